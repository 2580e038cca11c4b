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


WORKLOADS = {"W1": w1_frozen, "W2": w2_clients, "W4": w4_sessions}


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("workload", choices=sorted(WORKLOADS) + ["W3"])
    parser.add_argument("impl", choices=["irsa", "botocore", "workaround"])
    parser.add_argument("--iterations", type=int, default=1000)
    parser.add_argument("--threads", type=int, default=64)
    parser.add_argument("--hours", type=int, default=24)
    args = parser.parse_args()
    if args.workload == "W3":
        result = w3_day(args.impl, args.threads, args.hours)
    else:
        result = WORKLOADS[args.workload](args.impl, args.iterations)
    print(json.dumps(result))


if __name__ == "__main__":
    main()
