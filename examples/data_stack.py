"""pandas, s3fs, pyarrow and Ray Data on the library's credentials, end to end on loopback.

Plays the part of EKS and AWS: the loopback FakeSTS (irsa_testing/servers.py) as STS,
moto's server as S3 behind a proxy (irsa_testing/s3proxy.py) that refuses any request
not signed by a key STS issued and that has not expired.  Then does what a data pod does:

    irsa_session.install()                      # s3fs, fsspec and pandas' s3:// from now on
    pd.read_csv("s3://bucket/raw.csv")          # unchanged code
    pq.read_table("bucket/t.parquet", filesystem=irsa_session.arrow_filesystem())
    ray.data.read_parquet("bucket/t.parquet", filesystem=irsa_session.arrow_filesystem())

and prints how many STS calls were made and which keys signed the S3 requests.

    python examples/data_stack.py    # from the repo; needs pandas, s3fs, pyarrow, ray and a moto server
                                     # and the stand-ins (pip install ./testing)
"""

import io
import os
import sys
import tempfile

from irsa_testing.moto import MotoServer  # the stand-ins: pip install ./testing
from irsa_testing.s3proxy import S3Proxy
from irsa_testing.servers import FakeSTS
from irsa_testing.tokens import write_token

ROLE = "arn:aws:iam::111122223333:role/data-reader"


def main():
    folder = tempfile.mkdtemp(prefix="irsa-data-stack-")
    with FakeSTS() as sts, MotoServer() as moto, S3Proxy(moto.url, lambda: sts.issued) as s3:
        for name in list(os.environ):
            if name.startswith("AWS_"):
                del os.environ[name]
        os.environ.update(
            AWS_ROLE_ARN=ROLE,
            AWS_WEB_IDENTITY_TOKEN_FILE=write_token(folder),
            AWS_ENDPOINT_URL_STS=sts.url,
            AWS_ENDPOINT_URL_S3=s3.url,  # s3fs and boto3 read it; arrow_filesystem() too
            AWS_REGION="us-east-1",
            AWS_EC2_METADATA_DISABLED="true",
            AWS_CONFIG_FILE=os.devnull,
            AWS_SHARED_CREDENTIALS_FILE=os.devnull,
        )
        import pandas as pd
        import pyarrow.fs
        import pyarrow.parquet as pq
        import s3fs

        import irsa_session

        irsa_session.install()  # the one added line
        irsa_session.session.client("s3").create_bucket(Bucket="readings")
        frame = pd.DataFrame({"city": ["oslo", "lima", "cairo", "quito"], "reading": [3, 19, 27, 8]})
        frame.to_csv("s3://readings/raw.csv", index=False)  # pandas through s3fs
        buffer = io.BytesIO()
        frame.to_parquet(buffer, index=False)
        s3fs.S3FileSystem().pipe("readings/table.parquet", buffer.getvalue())
        s3fs.S3FileSystem().pipe("readings/table-2.parquet", buffer.getvalue())

        csv = pd.read_csv("s3://readings/raw.csv")
        fs = irsa_session.arrow_filesystem()
        table = pq.read_table("readings/table.parquet", filesystem=fs)
        parquet = pd.read_parquet("readings/table.parquet", filesystem=fs)
        print("pandas read_csv (s3fs):        %d rows" % len(csv))
        print("pyarrow.parquet (arrow fs):    %d rows" % table.num_rows)
        print("pandas read_parquet (arrow fs): %d rows" % len(parquet))

        import ray

        env = dict((k, v) for k, v in os.environ.items() if k.startswith("AWS_"))
        ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False, runtime_env={"env_vars": env},
                 _node_ip_address="127.0.0.1")
        try:
            # Two read tasks, on Ray's worker processes; the filesystem pickles as settings.
            paths = ["readings/table.parquet", "readings/table-2.parquet"]
            ds = ray.data.read_parquet(paths, filesystem=fs, override_num_blocks=2)
            total = sum(row["reading"] for row in ds.take_all())
        finally:
            ray.shutdown()
        print("Ray Data read_parquet:         sum of readings %d over 2 files" % total)
        seen = s3.seen
        keys = sorted(set(each.access_key for each in seen if each.verdict == "ok"))
        issued = [each["access_key"] for each in sts.issued]
        print("S3 requests:                   %d, %d refused; signed by %d key(s), all issued by STS: %s"
              % (len(seen), len([each for each in seen if each.verdict != "ok"]), len(keys),
                 set(keys) <= set(issued)))
        print("STS calls:                     %d (this process 1; each Ray worker process its own)"
              % sts.call_count)
        del fs
        pyarrow.fs.finalize_s3()  # a live S3 filesystem at exit can hang the interpreter
    return 0


if __name__ == "__main__":
    sys.exit(main())
