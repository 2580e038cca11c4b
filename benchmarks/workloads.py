"""One benchmark workload in this interpreter; prints its figures as one JSON line.

    python benchmarks/workloads.py W1 irsa --iterations 200000

Implementations ("impl"):
  irsa        irsa_session's ``session`` / ``assumed_role_session()``
  botocore    botocore's own web-identity provider (boto3.Session() on new boto3)
  workaround  the common copy-paste: read the token, one AssumeRoleWithWebIdentity,
              a session with static keys (the seed script of ray-eks-iam-pitfall.md)

The IRSA variables and AWS_ENDPOINT_URL_STS (a loopback STS that counts calls)
come from the environment the runner sets.
"""

import argparse
import datetime
import json
import os
import threading
import time


def make_session(impl):
    import boto3

    if impl == "irsa":
        from irsa_session import assumed_role_session

        return assumed_role_session()
    if impl == "irsa-watched":  # issue 25: a subscriber to every fetch (and OpenTelemetry if installed)
        from irsa_session import assumed_role_session, on_refresh

        on_refresh(lambda event: None)
        return assumed_role_session()
    if impl == "botocore":
        return boto3.session.Session()
    if impl == "workaround":
        with open(os.environ["AWS_WEB_IDENTITY_TOKEN_FILE"]) as handle:
            web_identity_token = handle.read()
        sts = boto3.client("sts", endpoint_url=os.environ["AWS_ENDPOINT_URL_STS"])
        role = sts.assume_role_with_web_identity(
            RoleArn=os.environ["AWS_ROLE_ARN"], RoleSessionName="assume-role",
            WebIdentityToken=web_identity_token,
        )
        credentials = role["Credentials"]
        return boto3.session.Session(
            aws_access_key_id=credentials["AccessKeyId"],
            aws_secret_access_key=credentials["SecretAccessKey"],
            aws_session_token=credentials["SessionToken"],
        )
    raise SystemExit("unknown impl %r" % impl)


def w1_frozen(impl, iterations):
    """get_credentials().get_frozen_credentials() with valid credentials."""
    session = make_session(impl)
    session.get_credentials().get_frozen_credentials()
    started = time.perf_counter()
    for _ in range(iterations):
        session.get_credentials().get_frozen_credentials()
    return {"us_per_call": (time.perf_counter() - started) / iterations * 1e6}


def w2_clients(impl, iterations):
    """session.client("s3") repeatedly from one session: first and later calls."""
    session = make_session(impl)
    started = time.perf_counter()
    session.client("s3", region_name="us-east-1")
    first = time.perf_counter() - started
    started = time.perf_counter()
    for _ in range(iterations):
        session.client("s3", region_name="us-east-1")
    return {"first_ms": first * 1e3, "ms_per_call": (time.perf_counter() - started) / iterations * 1e3}


def w4_sessions(impl, iterations):
    """A task building its session each call, then using its credentials."""
    started = time.perf_counter()
    make_session(impl).get_credentials().get_frozen_credentials()
    first = time.perf_counter() - started
    started = time.perf_counter()
    for _ in range(iterations - 1):
        make_session(impl).get_credentials().get_frozen_credentials()
    later = (time.perf_counter() - started) / max(iterations - 1, 1)
    return {"first_ms": first * 1e3, "ms_per_call": later * 1e3, "iterations": iterations}


def w3_day(impl, threads, hours):
    """A simulated day: 1 h credentials, threads using them every simulated minute.

    Time is simulated by replacing time.time (and botocore's clock) in this
    process; the loopback STS runs here too, so its expirations follow it.
    """
    from irsa_testing.clock import FakeClock
    from irsa_testing.servers import FakeSTS

    clock = FakeClock()
    real_time = time.time
    time.time = clock
    try:
        import botocore.credentials
        from dateutil.tz import tzlocal

        def sim_now():
            return datetime.datetime.fromtimestamp(clock(), tzlocal())

        botocore.credentials._local_now = sim_now
        with FakeSTS(duration=3600) as fake:
            os.environ["AWS_ENDPOINT_URL_STS"] = fake.url
            session = make_session(impl)
            creds = session.get_credentials()
            if hasattr(creds, "_time_fetcher") and impl == "botocore":
                creds._time_fetcher = sim_now
            expiry_of = {}
            gate = threading.Barrier(threads + 1)
            counts = {"uses": 0, "expired": 0, "errors": 0}
            bad_minutes = set()
            lock = threading.Lock()

            def worker():
                for minute in range(hours * 60):
                    gate.wait()
                    try:
                        key = creds.get_frozen_credentials().access_key
                        if key not in expiry_of:
                            expiry_of.update((i["access_key"], i["expiration"]) for i in fake.issued)
                        stale = expiry_of[key] <= clock()
                        with lock:
                            counts["uses"] += 1
                            counts["expired"] += stale
                            if stale:
                                bad_minutes.add(minute)
                    except Exception:  # counted: an error is a failed use
                        with lock:
                            counts["errors"] += 1
                            bad_minutes.add(minute)
                    gate.wait()

            pool = [threading.Thread(target=worker) for _ in range(threads)]
            for thread in pool:
                thread.start()
            for _ in range(hours * 60):
                clock.tick(60)
                gate.wait()
                gate.wait()
            for thread in pool:
                thread.join()
            counts["sts_calls"] = fake.call_count
            counts["minutes_expired"] = len(bad_minutes)  # with an expired use or an error
            return counts
    finally:
        time.time = real_time


def w7_soak(impl, threads, seconds, life):
    """Signed S3 requests from ``threads`` threads for ``seconds``, across refreshes of
    ``life``-second credentials; the latency of each, and the requests that failed.

    botocore's own provider gets its refresh windows scaled to the credentials'
    life as irsa_session's are (a quarter and a sixth of it), so both refresh at
    the same points of a short life.  S3 is the loopback proxy in IRSA_BENCH_S3,
    which refuses a key that STS did not issue or that has expired.
    """
    import botocore.credentials

    if impl == "botocore":
        botocore.credentials.RefreshableCredentials._advisory_refresh_timeout = life / 4.0
        botocore.credentials.RefreshableCredentials._mandatory_refresh_timeout = life / 6.0
    session = make_session(impl)
    s3 = session.client("s3", endpoint_url=os.environ["IRSA_BENCH_S3"], region_name="us-east-1")
    s3.get_object(Bucket="soak", Key="k")["Body"].read()  # first use, not timed
    waits = []  # how long each request's signer waited for its credentials
    credentials = s3._request_signer._credentials
    frozen = credentials.get_frozen_credentials

    def timed_frozen():
        started = time.perf_counter()
        try:
            return frozen()
        finally:
            waits.append(time.perf_counter() - started)

    credentials.get_frozen_credentials = timed_frozen
    latencies, failures = [], []
    lock = threading.Lock()
    deadline = time.monotonic() + seconds

    def reader():
        mine, failed = [], 0
        while time.monotonic() < deadline:
            started = time.perf_counter()
            try:
                s3.get_object(Bucket="soak", Key="k")["Body"].read()
            except Exception:  # counted: the target is none
                failed += 1
            mine.append(time.perf_counter() - started)
        with lock:
            latencies.extend(mine)
            failures.append(failed)

    pool = [threading.Thread(target=reader) for _ in range(threads)]
    for thread in pool:
        thread.start()
    for thread in pool:
        thread.join()
    ms = sorted(value * 1e3 for value in latencies)
    wait_ms = sorted(value * 1e3 for value in waits)
    return {
        "requests": len(ms),
        "failed": sum(failures),
        "median_ms": ms[len(ms) // 2],
        "p999_ms": ms[min(len(ms) - 1, int(len(ms) * 0.999))],
        "max_ms": ms[-1],
        "wait_median_ms": wait_ms[len(wait_ms) // 2],
        "wait_max_ms": wait_ms[-1],
    }


WORKLOADS = {"W1": w1_frozen, "W2": w2_clients, "W4": w4_sessions}


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("workload", choices=sorted(WORKLOADS) + ["W3", "W7"])
    parser.add_argument("impl", choices=["irsa", "irsa-watched", "botocore", "workaround"])
    parser.add_argument("--iterations", type=int, default=1000)
    parser.add_argument("--threads", type=int, default=64)
    parser.add_argument("--hours", type=int, default=24)
    parser.add_argument("--seconds", type=float, default=60)
    parser.add_argument("--life", type=float, default=20)
    args = parser.parse_args()
    if args.workload == "W3":
        result = w3_day(args.impl, args.threads, args.hours)
    elif args.workload == "W7":
        result = w7_soak(args.impl, args.threads, args.seconds, args.life)
    else:
        result = WORKLOADS[args.workload](args.impl, args.iterations)
    print(json.dumps(result))


if __name__ == "__main__":
    main()
