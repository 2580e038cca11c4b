"""irsa-session against botocore's own provider and the common workaround, in one run.

    python benchmarks/run.py --legacy-python /path/to/py37-with-boto3-1.4.8 [--quick]

Prints one table: the median of repeated runs with [min-max], the machine, and
ratios against the peers measured in the same run.  STS is the loopback fake of
irsa_testing/servers.py, which counts calls.  ``./dev bench`` runs it in full;
CI runs ``--quick`` (fewer repeats and iterations).
"""

import argparse
import json
import math
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time

from irsa_testing.s3proxy import Objects, S3Proxy
from irsa_testing.servers import FakeSTS
from irsa_testing.tokens import write_token

HERE = os.path.dirname(os.path.abspath(__file__))

ROLE = "arn:aws:iam::111122223333:role/bench"


class Runner(object):
    """Runs workloads in child interpreters against one counting STS."""

    def __init__(self, fake, pythons, quick, folder):
        self.fake = fake
        self.pythons = pythons  # label -> interpreter
        self.quick = quick
        self.token_file = write_token(folder)
        # Children start in this empty folder, not the checkout: with "-c" the
        # current folder comes first on sys.path, and irsa_session would be
        # compiled from the source tree (no .pyc where PYTHONDONTWRITEBYTECODE
        # is set) while boto3 loads from site-packages. Every package is
        # measured as installed.
        self.folder = folder

    def env(self, **extra):
        env = dict((k, v) for k, v in os.environ.items() if not k.startswith("AWS_"))
        env.update(
            AWS_ROLE_ARN=ROLE,
            AWS_WEB_IDENTITY_TOKEN_FILE=self.token_file,
            AWS_ENDPOINT_URL_STS=self.fake.url,
            AWS_REGION="us-east-1",
            AWS_DEFAULT_REGION="us-east-1",
            AWS_EC2_METADATA_DISABLED="true",
            AWS_CONFIG_FILE=os.devnull,
            AWS_SHARED_CREDENTIALS_FILE=os.devnull,
        )
        env.update(extra)
        return env

    def workload(self, python, workload, impl, *args, **env):
        """One child run (``env`` added to its environment); its JSON figures plus the
        STS calls it made."""
        before = self.fake.call_count
        done = subprocess.run(
            [self.pythons[python], os.path.join(HERE, "workloads.py"), workload, impl] + list(args),
            env=self.env(**env), cwd=self.folder, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
            universal_newlines=True, timeout=900,
        )
        if done.returncode != 0:
            raise SystemExit("%s %s on %s failed:\n%s" % (workload, impl, python, done.stderr[-2000:]))
        figures = json.loads(done.stdout.strip().splitlines()[-1])
        figures.setdefault("sts_calls", self.fake.call_count - before)
        return figures

    def repeat(self, count, python, workload, impl, *args):
        return [self.workload(python, workload, impl, *args) for _ in range(count)]

    def cold_start(self, python, impl, count):
        """``count`` new processes: import, session, one signed call; their figures."""
        return [self.cold_start_once(python, impl) for _ in range(count)]

    def cold_start_once(self, python, impl):
        """One new process: import, session, one signed call; wall and CPU time, peak RSS."""
        code = {
            "irsa": "from irsa_session import session\n"
                    "session.client('sts', endpoint_url=%r).get_caller_identity()\n",
            "botocore": "import boto3\n"
                        "boto3.client('sts', endpoint_url=%r).get_caller_identity()\n",
            "workaround": "import sys; sys.path.insert(0, %r)\nfrom workloads import make_session\n"
                          "make_session('workaround').client('sts', endpoint_url=%%r).get_caller_identity()\n"
                          % HERE,
        }[impl] % self.fake.url
        started = time.perf_counter()
        child = subprocess.Popen([self.pythons[python], "-c", code], env=self.env(), cwd=self.folder)
        _, status, usage = os.wait4(child.pid, 0)
        seconds = time.perf_counter() - started
        child.returncode = status
        if status != 0:
            raise SystemExit("cold start %s on %s failed" % (impl, python))
        return {
            "ms": seconds * 1e3,
            "cpu_ms": (usage.ru_utime + usage.ru_stime) * 1e3,
            "mb": usage.ru_maxrss / 1024.0,
        }

    def paired_cold_starts(self, python, impls, count):
        """``count`` rounds, each one cold start of every impl, the order turned each round.

        A round's impls run back to back, so a slow spell of the machine falls on
        both sides of a ratio taken within the round.
        """
        runs = dict((impl, []) for impl in impls)
        for number in range(count):
            for impl in (impls if number % 2 == 0 else impls[::-1]):
                runs[impl].append(self.cold_start_once(python, impl))
        return runs

    def import_cost(self, python, count):
        """Milliseconds that ``import irsa_session`` takes after ``import boto3``, timed
        inside each fresh process (the difference of two whole processes' wall times
        is mostly start-up noise)."""
        code = (
            "import time, boto3\nstarted = time.perf_counter()\nimport irsa_session\n"
            "print((time.perf_counter() - started) * 1e3)\n"
        )
        costs = []
        for _ in range(count):
            before = self.fake.call_count
            out = subprocess.run(
                [self.pythons[python], "-c", code], env=self.env(), cwd=self.folder,
                check=True, stdout=subprocess.PIPE, universal_newlines=True,
            ).stdout
            costs.append(float(out.strip().splitlines()[-1]))
            assert self.fake.call_count == before, "importing made an STS call"
        return costs

    def processes(self, python, impl, count, cache_dir=None):
        """`count` processes at once, each needing credentials; STS calls made."""
        code = (
            "import sys; sys.path.insert(0, %r)\nfrom workloads import make_session\n"
            "make_session(%r).get_credentials().get_frozen_credentials()\n" % (HERE, impl)
        )
        extra = {"IRSA_SESSION_CACHE_DIR": cache_dir} if cache_dir else {}
        before = self.fake.call_count
        children = [
            subprocess.Popen(
                [self.pythons[python], "-c", code], env=self.env(**extra), cwd=self.folder
            )
            for _ in range(count)
        ]
        if any(child.wait(120) != 0 for child in children):
            raise SystemExit("W6 %s: a process failed" % impl)
        return self.fake.call_count - before


def summary(values, unit="", digits=2):
    """median [min-max] of the values."""
    fmt = "%%.%df" % digits
    return "%s [%s-%s]%s" % (
        fmt % statistics.median(values), fmt % min(values), fmt % max(values), unit
    )


def ratio(peer, ours):
    return "%.1fx" % (statistics.median(peer) / statistics.median(ours))


class Targets(object):
    """Each target's measured value; a target is met only when the value meets it.

    No margin for noise: the [min-max] band printed beside each figure shows it.
    Counts (STS calls, expired uses, errors) fail any run that misses them;
    times and ratios fail a full run, while a --quick run (CI: a few runs on a
    shared 2-core machine) prints them as met or MISSED without failing on them,
    since the full run is the one that judges them and that the README quotes.
    """

    def __init__(self, quick=False):
        self.results = []
        self.quick = quick

    def at_most(self, name, value, limit, kind="time"):
        """``kind``: "count", "ratio" or "time"."""
        self.results.append((name, value, limit, kind, value <= limit))
        return value

    def missed(self):
        return [result for result in self.results if not result[4]]

    def failing(self):
        """The missed targets that fail this run."""
        return [r for r in self.missed() if r[3] == "count" or not self.quick]


def soak(run, fake, targets, out, quick):
    """W7: signed S3 requests across refresh boundaries, irsa_session beside botocore."""
    life, seconds, threads = (20.0, 50.0, 8) if quick else (60.0, 240.0, 32)
    # Each set lives from its issue to its refresh: at least three quarters of its life.
    most_calls = 1 + int(math.ceil(seconds / (life * 0.75)))
    out("W7  soak: %d threads make signed S3 requests for %d s across refreshes of %d-second "
        "credentials; STS answers in 300 ms; S3 is a loopback proxy that refuses expired keys"
        % (threads, seconds, life))
    fake.set_mode(duration=int(life), honor_duration=False, delay=0.3)
    try:
        with Objects() as objects, S3Proxy(objects.base_url, lambda: fake.issued) as s3:
            for impl in ("irsa", "botocore"):
                r = run.workload(
                    "newest", "W7", impl, "--threads", str(threads), "--seconds", str(seconds),
                    "--life", str(life), IRSA_BENCH_S3=s3.url,
                )
                refused = len([seen for seen in s3.seen if seen.verdict != "ok"])
                s3.forget()
                out("    %-18s %d requests, %d failed (%d refused by S3); latency median %.2f ms, "
                    "p99.9 %.2f ms, max %.2f ms; waiting for credentials: median %.3f ms, max "
                    "%.2f ms; %d STS calls (the first, then %.2f per lifetime)" % (
                        "%s (newest)" % impl, r["requests"], r["failed"], refused, r["median_ms"],
                        r["p999_ms"], r["max_ms"], r["wait_median_ms"], r["wait_max_ms"],
                        r["sts_calls"], (r["sts_calls"] - 1) / (seconds / life)))
                if impl == "irsa":
                    targets.at_most("W7 failed requests", r["failed"] + refused, 0, kind="count")
                    targets.at_most("W7 STS calls", r["sts_calls"], most_calls, kind="count")
                    targets.at_most("W7 max - median ms", r["max_ms"] - r["median_ms"], 5.0)
                    targets.at_most("W7 longest wait for credentials ms", r["wait_max_ms"], 5.0)
    finally:
        fake.set_mode(delay=0.0, duration=3600, honor_duration=True)
    out("    target: 0 failed; irsa_session's max within 5 ms of its median (botocore's own: one "
        "request per refresh pays the STS latency); at most %d STS calls (one per refresh)" % most_calls)
    out("    (botocore's refresh windows are scaled to the credentials' life, as irsa_session's are)")


def endpoint(run, fake, targets, out, quick):
    """W8: serve(): requests per second, a client's first credentials, STS calls of 8 clients."""
    import http.client
    import threading

    import irsa_session

    seconds = 3.0 if quick else 10.0
    os.environ.update(run.env())  # this process serves the runner's IRSA settings
    with irsa_session.serve() as served:
        with open(served.token_file) as handle:
            token = handle.read()
        counts, firsts = [], []

        def client():
            connection = http.client.HTTPConnection("127.0.0.1", served.port, timeout=10)
            done, deadline = 0, time.monotonic() + seconds
            while time.monotonic() < deadline:
                connection.request("GET", "/v1/credentials", headers={"Authorization": token})
                connection.getresponse().read()
                done += 1
            counts.append(done)

        for _ in range(21):  # a new client's first credentials: connect, ask, read
            started = time.perf_counter()
            connection = http.client.HTTPConnection("127.0.0.1", served.port, timeout=10)
            connection.request("GET", "/v1/credentials", headers={"Authorization": token})
            connection.getresponse().read()
            connection.close()
            firsts.append((time.perf_counter() - started) * 1e3)
        pool = [threading.Thread(target=client) for _ in range(4)]
        for thread in pool:
            thread.start()
        for thread in pool:
            thread.join()
        out("W8  serve(): a container-credentials endpoint on 127.0.0.1 (newest)")
        out("    %.0f requests per second (4 keep-alive clients, %d s); a new client's first "
            "credentials: %s (connect, ask, read)" % (sum(counts) / seconds, seconds, summary(firsts, " ms")))
        before = fake.call_count
        code = "import boto3\nboto3.Session().get_credentials().get_frozen_credentials()\n"
        env = dict((k, v) for k, v in run.env().items() if not k.startswith("AWS_ROLE") and k != "AWS_WEB_IDENTITY_TOKEN_FILE")
        env.update(served.environ())
        children = [subprocess.Popen([sys.executable, "-c", code], env=env, cwd=run.folder) for _ in range(8)]
        if any(child.wait(120) != 0 for child in children):
            raise SystemExit("W8: a client process failed")
        through = fake.call_count - before
    alone = run.processes("newest", "botocore", 8)
    out("    8 processes of plain boto3: %d STS calls on their own, %d through the endpoint "
        "(which had fetched its credentials already)" % (alone, through))
    targets.at_most("W8 STS calls of 8 clients through the endpoint", through, 0, kind="count")
    out("    target: no STS call of their own for clients of the endpoint")


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--legacy-python", required=True, help="Python with boto3 1.4.8 / botocore 1.8.50")
    parser.add_argument("--quick", action="store_true", help="fewer repeats and iterations (CI)")
    args = parser.parse_args()
    pythons = {"newest": sys.executable, "legacy": args.legacy_python}
    repeats = 3 if args.quick else 7
    w1_n = "20000" if args.quick else "200000"
    folder = tempfile.mkdtemp(prefix="irsa-bench-")
    lines = []
    targets = Targets(args.quick)

    def out(text=""):
        print(text)
        sys.stdout.flush()
        lines.append(text)

    import boto3
    versions = subprocess.run(
        [args.legacy_python, "-c", "import boto3, botocore, platform; print(platform.python_version(), boto3.__version__, botocore.__version__)"],
        stdout=subprocess.PIPE, universal_newlines=True, check=True,
    ).stdout.split()
    out("irsa-session benchmarks, %s mode, %s: %s, %d cores, %s" % (
        "quick" if args.quick else "full", time.strftime("%Y-%m-%d"), platform.processor() or platform.machine(),
        os.cpu_count() or 0, platform.platform()))
    out("newest: Python %s, boto3 %s; legacy: Python %s, boto3 %s / botocore %s" % (
        platform.python_version(), boto3.__version__, versions[0], versions[1], versions[2]))
    out("median [min-max] over %d runs unless noted; STS on loopback, counting calls" % repeats)
    for label, python in sorted(pythons.items()):
        where = subprocess.run(
            [python, "-c", "import irsa_session; print(irsa_session.__file__)"],
            cwd=folder, stdout=subprocess.PIPE, universal_newlines=True, check=True,
        ).stdout.strip()
        out("irsa_session (%s) as installed: %s" % (label, os.path.dirname(where)))
    out()

    with FakeSTS() as fake:
        run = Runner(fake, pythons, args.quick, folder)
        peers = [("botocore", "newest"), ("workaround", "newest"), ("workaround", "legacy"),
                 ("irsa", "newest"), ("irsa", "legacy")]

        out("W1  get_frozen_credentials(), valid credentials, %s calls: us per call" % w1_n)
        w1 = {}
        for impl, python in peers:
            w1[(impl, python)] = [r["us_per_call"] for r in run.repeat(repeats, python, "W1", impl, "--iterations", w1_n)]
            out("    %-22s %s" % ("%s (%s)" % (impl, python), summary(w1[(impl, python)], " us", 3)))
        out("    irsa vs botocore (newest): %s faster; target <= 2 us on newest and legacy" % ratio(
            w1[("botocore", "newest")], w1[("irsa", "newest")]))
        for python in ("newest", "legacy"):
            targets.at_most("W1 us per call (%s)" % python, statistics.median(w1[("irsa", python)]), 2.0)
        # Issue 25: an on_refresh subscriber costs the hot path nothing (no fetch, no event).
        watched = [r["us_per_call"] for r in run.repeat(repeats, "newest", "W1", "irsa-watched", "--iterations", w1_n)]
        out("    %-22s %s" % ("irsa + on_refresh", summary(watched, " us", 3)))
        cost = statistics.median(watched) / statistics.median(w1[("irsa", "newest")])
        out("    with a subscriber vs without (newest): %.3f; target <= 1.05" % cost)
        targets.at_most("W1 with an on_refresh subscriber vs without", cost, 1.05, kind="ratio")
        out()

        out("W2  session.client('s3') 200 times from one session: first client, then per call")
        w2 = {}
        for impl, python in peers:
            results = run.repeat(repeats, python, "W2", impl, "--iterations", "200")
            w2[(impl, python)] = [r["ms_per_call"] for r in results]
            out("    %-22s first %s, then %s" % (
                "%s (%s)" % (impl, python), summary([r["first_ms"] for r in results], " ms"),
                summary(w2[(impl, python)], " ms", 4)))
        out("    irsa cache hit vs botocore (newest): %s faster; target <= 0.02 ms" % ratio(
            w2[("botocore", "newest")], w2[("irsa", "newest")]))
        targets.at_most("W2 ms per cached client (newest)", statistics.median(w2[("irsa", "newest")]), 0.02)
        out()

        out("W3  simulated 24 h, 1 h credentials, 64 threads using them every simulated minute (1 run each)")
        for impl, python in peers:
            r = run.workload(python, "W3", impl, "--threads", "64", "--hours", "24")
            if impl == "irsa":
                targets.at_most("W3 STS calls (%s)" % python, r["sts_calls"], 32, kind="count")
                targets.at_most("W3 expired uses (%s)" % python, r["expired"], 0, kind="count")
                targets.at_most("W3 errors (%s)" % python, r["errors"], 0, kind="count")
                targets.at_most("W3 uses missing (%s)" % python, 64 * 24 * 60 - r["uses"], 0, kind="count")
            out("    %-22s %d STS calls; %d of %d uses, %d expired (in %d of 1440 minutes), %d errors" % (
                "%s (%s)" % (impl, python), r["sts_calls"], r["uses"], 64 * 24 * 60, r["expired"],
                r["minutes_expired"], r["errors"]))
        out("    target: at most 32 STS calls, every use made, none expired, no error, on legacy too")
        out()

        out("W4  assumed_role_session() (or its peer) per task, then its credentials")
        for impl, python in peers:
            iterations = 1000 if impl == "irsa" else (50 if args.quick else 100)
            results = run.repeat(3 if impl != "irsa" else repeats, python, "W4", impl, "--iterations", str(iterations))
            calls = [r["sts_calls"] * 1000.0 / iterations for r in results]
            if impl == "irsa":
                targets.at_most("W4 STS calls per run (%s)" % python, max(r["sts_calls"] for r in results), 1, kind="count")
                targets.at_most("W4 ms per task (%s)" % python, statistics.median([r["ms_per_call"] for r in results]), 0.1)
            out("    %-22s %s STS calls per 1000 tasks; first %s, then %s per task (%d tasks a run)" % (
                "%s (%s)" % (impl, python), summary(calls, "", 0), summary([r["first_ms"] for r in results], " ms"),
                summary([r["ms_per_call"] for r in results], " ms", 4), iterations))
        out("    target: 1 STS call in total, at most 0.1 ms per call after the first")
        out()

        count = 9 if args.quick else 21
        out("W5  cold start: new process, import, session, one signed call to loopback STS (%d runs)" % count)
        w5 = {}
        paired = run.paired_cold_starts("newest", ["irsa", "botocore"], count)
        for impl, python in peers:
            runs = paired[impl] if python == "newest" and impl in paired else run.cold_start(python, impl, count)
            w5[(impl, python)] = runs
            out("    %-22s %s CPU, %s wall, %s peak RSS" % (
                "%s (%s)" % (impl, python), summary([r["cpu_ms"] for r in runs], " ms", 0),
                summary([r["ms"] for r in runs], " ms", 0), summary([r["mb"] for r in runs], " MB", 1)))
        # CPU time (user + system of the child), paired round by round: wall time
        # also counts waiting for the machine, which a loaded CI box varies.
        ratios = [ours["cpu_ms"] / theirs["cpu_ms"] for ours, theirs in zip(paired["irsa"], paired["botocore"])]
        memory = statistics.median([r["mb"] for r in paired["irsa"]]) / statistics.median(
            [r["mb"] for r in paired["botocore"]])
        out("    irsa / botocore (newest), CPU time paired round by round: %s; memory %.3fx; target <= 1.00x" % (
            summary(ratios, "x", 3), memory))
        targets.at_most("W5 cold start CPU vs botocore (newest)", statistics.median(ratios), 1.00, kind="ratio")
        for python in ("newest", "legacy"):
            costs = run.import_cost(python, count)
            cost = statistics.median(costs)
            out("    import irsa_session after boto3 (%s): +%s, timed inside the process; no STS call; target <= 15 ms" % (
                python, summary(costs, " ms", 1)))
            targets.at_most("W5 import cost ms (%s)" % python, cost, 15.0)
        out()

        out("W6  8 processes on one node, each needing credentials: STS calls")
        for impl, python in peers:
            out("    %-22s %d" % ("%s (%s)" % (impl, python), run.processes(python, impl, 8)))
        for python in ("newest", "legacy"):
            cache_dir = tempfile.mkdtemp(prefix="irsa-node-cache-")
            calls = run.processes(python, "irsa", 8, cache_dir)
            out("    %-22s %d  (with IRSA_SESSION_CACHE_DIR)" % ("irsa (%s)" % python, calls))
            targets.at_most("W6 STS calls with the node cache (%s)" % python, calls, 1, kind="count")
        out("    target: 1 STS call per refresh cycle with the node-wide cache, P without")
        out()
        soak(run, fake, targets, out, args.quick)
        out()
        endpoint(run, fake, targets, out, args.quick)
    out()
    missed = targets.missed()
    out("targets: %d of %d met (each against the target itself; the bands above show the noise)" % (
        len(targets.results) - len(missed), len(targets.results)))
    for name, value, limit, kind, _ in missed:
        out("    MISSED %s: %.4g, target <= %.4g" % (name, value, limit))
    if missed and not targets.failing():
        out("    (a --quick run reports timing targets; ./dev bench's full run judges them)")
    return 1 if targets.failing() else 0


if __name__ == "__main__":
    sys.exit(main())
