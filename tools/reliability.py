"""Print the reliability figures: faults survived, STS calls, recovery times, leaks.

Runs the scenarios of ``irsa_testing/scenarios.py`` (the ones ``tests/test_reliability.py``
asserts on) against the fault-injecting loopback STS, with every log record of
every logger captured at DEBUG and searched for secrets afterwards.

    ./dev reliability            # newest boto3 and legacy boto3 1.4.8 on Python 3.7
    python tools/reliability.py  # by hand: pip install . ./testing first
"""

import logging
import os
import pickle
import platform
import sys
import tempfile
import time

import boto3
import botocore

import irsa_session
from irsa_testing import ROLE_ARN, scenarios
from irsa_testing.servers import FakeSTS
from irsa_testing.tokens import write_token


def row(name, result, calls="", seconds=None):
    took = "" if seconds is None else "%.2f s" % seconds
    print("%-44s %-58s %9s %9s" % (name, result, calls, took))


def main():
    capture = scenarios.Capture()
    root = logging.getLogger()
    root.addHandler(capture)
    root.setLevel(logging.DEBUG)
    for noisy in ("urllib3", "botocore.vendored"):
        logging.getLogger(noisy).setLevel(logging.DEBUG)
    print(
        "irsa-session %s reliability figures: Python %s, boto3 %s / botocore %s, %d cores, %s"
        % (
            irsa_session.__version__,
            platform.python_version(),
            boto3.__version__,
            botocore.__version__,
            os.cpu_count() or 0,
            time.strftime("%Y-%m-%d"),
        )
    )
    print("%-44s %-58s %9s %9s" % ("scenario", "result", "STS calls", "time"))
    secrets, texts = [], []
    tried = survived = 0
    with FakeSTS() as fake:
        for name in scenarios.TRANSIENT_FAULTS:
            tried += 1
            figures = scenarios.transient_fault(fake, tempfile.mkdtemp(), name)
            ok = figures["error"] is None
            survived += ok
            row("transient: " + name, "survived" if ok else "FAILED: %s" % figures["error"],
                figures["attempts"], figures["seconds"])
            secrets += _secrets_of(fake)

        started = time.monotonic()
        figures = scenarios.advisory_outage(fake, tempfile.mkdtemp())
        error = figures["error"]
        row(
            "outage in the advisory window (%d s)" % figures["advisory_seconds"],
            "served %d calls; mandatory: %s (%s)"
            % (figures["served"], type(error).__name__, getattr(error, "code", None)),
            "%d + %d" % (figures["advisory_sts_calls"], figures["mandatory_sts_calls"]),
            time.monotonic() - started,
        )
        texts.append(str(error))
        secrets += _secrets_of(fake)

        figures = scenarios.burst(fake, tempfile.mkdtemp(), threads=100, processes=16, rate=5)
        row(
            "burst: 100 threads + 16 processes, 5 calls/s",
            "%d/100 threads, %d/16 processes got credentials; %d throttled"
            % (figures["ok_threads"], figures["ok_processes"], figures["throttled"]),
            figures["sts_calls"],
            figures["seconds"],
        )
        secrets += _secrets_of(fake)

        started = time.monotonic()
        figures = scenarios.rotation(fake, tempfile.mkdtemp(), threads=32, seconds=2.0)
        row(
            "rotation: ..data swapped every 3 ms, 32 thr",
            "%d swaps; %d incomplete, %d stale tokens sent; %d failures"
            % (figures["rotations"], figures["incomplete_tokens"], figures["stale_tokens"],
               len(figures["failures"])),
            figures["sts_calls"],
            time.monotonic() - started,
        )
        secrets += _secrets_of(fake)

        started = time.monotonic()
        figures = scenarios.stale_token(fake, tempfile.mkdtemp())
        row("stale token on disk", "%s (%s)" % (type(figures["error"]).__name__, figures["error"].code),
            figures["sts_calls"], time.monotonic() - started)
        texts.append(str(figures["error"]))
        secrets += _secrets_of(fake)

        if hasattr(os, "fork"):
            figures = scenarios.fork_during_refresh(fake, tempfile.mkdtemp())
            row("fork while a refresh is in flight",
                "child got its own credentials" if figures["child_key"] else "CHILD HUNG",
                "", figures["child_seconds"])
            secrets += _secrets_of(fake)

        session = irsa_session.assumed_role_session(
            role_arn=ROLE_ARN, token_file=write_token(tempfile.mkdtemp()),
            sts_endpoint_url=fake.url,
        )
        frozen = session.get_credentials().get_frozen_credentials()
        texts += [repr(session), repr(session.get_credentials()), repr(frozen), str(frozen)]
        texts.append(pickle.dumps(session).decode("latin-1"))
        secrets += _secrets_of(fake)

    started = time.monotonic()
    figures = scenarios.simulated_day(tempfile.mkdtemp(), threads=64, failure_rate=0.1)
    row(
        "simulated 24 h: 64 threads, 10% STS failures",
        "%d uses, %d with expired credentials; %d refreshes, %d failed calls"
        % (figures["uses"], figures["expired_uses"], figures["refreshes"], figures["sts_failures"]),
        figures["sts_calls"],
        time.monotonic() - started,
    )

    root.removeHandler(capture)
    everything = capture.lines + texts
    leaks = sum(1 for text in everything for secret in set(secrets) if secret in text)
    row("leaks (tokens, secret keys, session tokens)",
        "%d found in %d log records, reprs, errors and pickles" % (leaks, len(everything)))
    print("faults tried: %d, survived: %d; leaks found: %d" % (tried, survived, leaks))
    return 0 if survived == tried and leaks == 0 else 1


def _secrets_of(fake):
    found = [call["token"] for call in fake.calls if call["token"]]
    for issued in fake.issued:
        found += [issued["secret_key"], issued["session_token"]]
    return found


if __name__ == "__main__":
    sys.exit(main())
