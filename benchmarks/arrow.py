"""arrow_filesystem() against a native pyarrow S3FileSystem with static keys, same loopback data.

    python benchmarks/arrow.py [--quick]     # in a venv with pyarrow, boto3, moto's server reachable

S3 is moto's server on 127.0.0.1 (its command from IRSA_TEST_MOTO_SERVER, or
moto_server on PATH); STS is the loopback FakeSTS.  Both filesystems read the
same object, alternating run by run (ABAB...) so drift on the machine hits
both alike; the native one gets the very credentials the library fetched.
Prints medians [min-max] and the ratios, and each target as met only when the
median meets it (no margin: the [min-max] band beside it shows the noise).

Targets: read throughput of arrow_filesystem() at least 95% of native (the
median of the run-by-run ratios), and its Python layer adds at most 0.5 ms per
metadata call (the median of per-call differences, the two filesystems called
in turn); one STS call.  A full run exits 1 when any target is missed.  A
--quick run (CI: a smaller object and fewer runs, on a shared machine) prints
the timing targets the same way but exits 1 only on the STS count: its timings
are too few to judge, and the full run is the one the README quotes.
"""

import argparse
import os
import statistics
import sys
import tempfile
import time

from irsa_testing.moto import MotoServer
from irsa_testing.servers import FakeSTS
from irsa_testing.tokens import write_token

ROLE = "arn:aws:iam::111122223333:role/bench"
THROUGHPUT_TARGET = 0.95
OVERHEAD_TARGET_MS = 0.5


def summary(values, digits=1):
    fmt = "%%.%df" % digits
    return "%s [%s-%s]" % (fmt % statistics.median(values), fmt % min(values), fmt % max(values))


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--quick", action="store_true", help="a smaller object, fewer runs (CI)")
    args = parser.parse_args()
    size_mb = 32 if args.quick else 64
    runs = 7 if args.quick else 9
    calls = 40 if args.quick else 120  # per run, each filesystem
    folder = tempfile.mkdtemp(prefix="irsa-bench-arrow-")
    with FakeSTS() as fake, MotoServer() as moto:
        for name in list(os.environ):
            if name.startswith("AWS_"):
                del os.environ[name]
        os.environ.update(
            AWS_ROLE_ARN=ROLE,
            AWS_WEB_IDENTITY_TOKEN_FILE=write_token(folder),
            AWS_ENDPOINT_URL_STS=fake.url,
            AWS_REGION="us-east-1",
            AWS_EC2_METADATA_DISABLED="true",
            AWS_CONFIG_FILE=os.devnull,
            AWS_SHARED_CREDENTIALS_FILE=os.devnull,
        )
        import boto3
        import pyarrow
        import pyarrow.fs as pafs

        import irsa_session

        boto3.client(
            "s3", endpoint_url=moto.url, region_name="us-east-1",
            aws_access_key_id="testing", aws_secret_access_key="testing",
        ).create_bucket(Bucket="bench")
        ours = irsa_session.arrow_filesystem(endpoint_override=moto.url, region="us-east-1")
        with ours.open_output_stream("bench/object.bin") as out:
            out.write(os.urandom(size_mb * 1024 * 1024))
        frozen = irsa_session.session.get_credentials().get_frozen_credentials()
        native = pafs.S3FileSystem(
            access_key=frozen.access_key, secret_key=frozen.secret_key,
            session_token=frozen.token, endpoint_override=moto.url, region="us-east-1",
        )

        def read(fs):
            started = time.perf_counter()
            with fs.open_input_stream("bench/object.bin") as stream:
                while stream.read(4 * 1024 * 1024):
                    pass
            return size_mb / (time.perf_counter() - started)

        def info(fs):
            started = time.perf_counter()
            fs.get_file_info("bench/object.bin")
            return (time.perf_counter() - started) * 1e3

        read(native), read(ours)  # warm both: connections, the first native build
        speeds = {"native": [], "ours": []}
        latency = {"native": [], "ours": []}
        for _ in range(runs):
            for label, fs in (("native", native), ("ours", ours)):
                speeds[label].append(read(fs))
        differences = []
        for _ in range(calls * runs):  # in turn, so a slow moment hits both
            mine, theirs = info(ours), info(native)
            latency["ours"].append(mine)
            latency["native"].append(theirs)
            differences.append(mine - theirs)
        ratios = [ours_ / native_ for ours_, native_ in zip(speeds["ours"], speeds["native"])]
        ratio = statistics.median(ratios)
        overhead = statistics.median(differences)
        print("arrow_filesystem() vs native S3FileSystem (static keys), pyarrow %s, moto on loopback"
              % pyarrow.__version__)
        print("  read %d MB, %d runs each, MB/s: native %s, arrow_filesystem %s: %s x run by run; "
              "target >= %.2fx" % (size_mb, runs, summary(speeds["native"]), summary(speeds["ours"]),
                                  summary(ratios, 3), THROUGHPUT_TARGET))
        print("  get_file_info, ms per call (%d calls each, in turn): native %s, arrow_filesystem %s; "
              "median difference %+.3f ms; target <= %.1f ms" % (
                  calls * runs, summary(latency["native"], 3), summary(latency["ours"], 3),
                  overhead, OVERHEAD_TARGET_MS))
        print("  STS calls: %d" % fake.call_count)
        missed, timing = [], []
        if fake.call_count != 1:
            missed.append("%d STS calls, target 1" % fake.call_count)
        if ratio < THROUGHPUT_TARGET:
            timing.append("throughput %.3fx < %.2fx" % (ratio, THROUGHPUT_TARGET))
        if overhead > OVERHEAD_TARGET_MS:
            timing.append("overhead %.3f ms > %.1f ms" % (overhead, OVERHEAD_TARGET_MS))
        print("targets: %s" % ("met" if not missed + timing else "MISSED " + "; ".join(missed + timing)))
        if timing and args.quick:
            print("  (a --quick run reports timing targets; ./dev bench's full run judges them)")
        del ours, native
        pafs.finalize_s3()  # a live S3 filesystem at exit can hang the interpreter
        return 1 if missed or (timing and not args.quick) else 0


if __name__ == "__main__":
    sys.exit(main())
