"""Native readers on the library's credentials (the tests-readers row).

S3 is moto behind the SigV4-checking proxy; every request must be signed by a key
the FakeSTS issued and not yet expired, and the STS calls are counted.  Each
native reader runs in a process of its own whose only AWS credentials are
serve()'s endpoint: deltalake and lance (Rust's object_store), polars, daft (the
Rust SDK), the CRT client of s3torchconnector, duckdb's aws extension (the C++
SDK), pyarrow's own S3FileSystem (the C++ SDK), boto3 and the AWS CLI (v1, PyPI's;
v2 is not on PyPI).  polars is also tested in-process, after install() and
through a ``credential_provider`` callable.
"""

import io
import json
import math
import os
import threading
import uuid

import pytest

from irsa_testing.rows import need

ROWS = ("tests-readers",)  # its job is to run this module: no skips there
deltalake = need("deltalake", ROWS)
pl = need("polars", ROWS)
pa = need("pyarrow", ROWS)
lance = need("lance", ROWS)
need("daft", ROWS)
need("duckdb", ROWS)
need("s3torchconnectorclient", ROWS)
need("awscli", ROWS)

import boto3  # noqa: E402

import irsa_session  # noqa: E402
from irsa_session._refresh import advisory_span  # noqa: E402
from irsa_testing.datastack import (  # noqa: E402,F401  (fixtures)
    assert_all_signed_by_issued, assume_calls, bucket, native_env, proxy, run_python,
)

ROWS_IN_TABLE = 3  # readings.parquet, the delta table and the lance dataset each hold 3


def options(proxy):
    return {"aws_endpoint_url": proxy.url, "aws_allow_http": "true", "aws_region": "us-east-1"}


# One read for each reader: ``read()`` returns the number of rows it read.  %(url)s is the
# S3 proxy, %(bucket)s the bucket.  None is given credentials: each finds the endpoint.
READERS = {
    "deltalake": (
        "import deltalake\n"
        "OPTS = {'aws_endpoint_url': %(url)r, 'aws_allow_http': 'true', 'aws_region': 'us-east-1'}\n"
        "def read():\n"
        "    return deltalake.DeltaTable('s3://%(bucket)s/delta/readings', storage_options=OPTS)"
        ".to_pyarrow_table().num_rows\n"
    ),
    "polars": (
        "import polars as pl\n"
        "OPTS = {'aws_endpoint_url': %(url)r, 'aws_allow_http': 'true', 'aws_region': 'us-east-1'}\n"
        "def read():\n"
        "    return pl.read_parquet('s3://%(bucket)s/raw/readings.parquet', storage_options=OPTS).height\n"
    ),
    "lance": (
        "import lance\n"
        "OPTS = {'aws_endpoint': %(url)r, 'allow_http': 'true', 'aws_region': 'us-east-1'}\n"
        "def read():\n"
        "    return lance.dataset('s3://%(bucket)s/lance/readings.lance', storage_options=OPTS).count_rows()\n"
    ),
    "daft": (
        "import daft\n"
        "from daft.io import IOConfig, S3Config\n"
        "CONFIG = IOConfig(s3=S3Config(endpoint_url=%(url)r, region_name='us-east-1', "
        "force_virtual_addressing=False))\n"
        "def read():\n"
        "    return daft.read_parquet('s3://%(bucket)s/raw/readings.parquet', io_config=CONFIG)"
        ".count_rows()\n"
    ),
    "crt": (
        "import pyarrow.parquet as pq, io\n"
        "from s3torchconnectorclient._mountpoint_s3_client import MountpointS3Client\n"
        "CLIENT = MountpointS3Client('us-east-1', endpoint=%(url)r, force_path_style=True)\n"
        "def read():\n"
        "    body = b''.join(CLIENT.get_object(%(bucket)r, 'raw/readings.parquet'))\n"
        "    return pq.read_table(io.BytesIO(body)).num_rows\n"
    ),
    "duckdb": (
        "import duckdb, duckdb_extension_httpfs, duckdb_extension_aws, glob, os\n"
        "def extension(module, name):\n"
        "    return glob.glob(os.path.join(os.path.dirname(module.__file__), 'extensions', '*', name + '.duckdb_extension'))[0]\n"
        "DB = duckdb.connect()\n"
        "DB.execute(\"LOAD '%%s'\" %% extension(duckdb_extension_httpfs, 'httpfs'))\n"
        "DB.execute(\"LOAD '%%s'\" %% extension(duckdb_extension_aws, 'aws'))\n"
        "DB.execute(\"CREATE SECRET s (TYPE s3, PROVIDER credential_chain, "
        "REFRESH auto, ENDPOINT '%(host)s', USE_SSL false, URL_STYLE 'path', REGION 'us-east-1')\")\n"
        "def read():\n"
        "    return DB.execute(\"SELECT count(*) FROM read_parquet('s3://%(bucket)s/raw/readings.parquet')\").fetchone()[0]\n"
    ),
    "pyarrow": (
        "import pyarrow.fs, pyarrow.parquet as pq\n"
        "FS = pyarrow.fs.S3FileSystem(endpoint_override=%(url)r, region='us-east-1')\n"
        "def read():\n"
        "    return pq.read_table('%(bucket)s/raw/readings.parquet', filesystem=FS).num_rows\n"
    ),
    "boto3": (
        "import boto3, io, pyarrow.parquet as pq\n"
        "S3 = boto3.client('s3', endpoint_url=%(url)r, region_name='us-east-1')\n"
        "def read():\n"
        "    body = S3.get_object(Bucket=%(bucket)r, Key='raw/readings.parquet')['Body'].read()\n"
        "    return pq.read_table(io.BytesIO(body)).num_rows\n"
    ),
    "aws-cli": (
        "import subprocess, sys, io, pyarrow.parquet as pq\n"
        "def read():\n"
        "    body = subprocess.run([sys.executable, '-m', 'awscli', 's3', 'cp', '--endpoint-url', %(url)r,\n"
        "                           's3://%(bucket)s/raw/readings.parquet', '-'],\n"
        "                          stdout=subprocess.PIPE, stderr=subprocess.PIPE, check=True).stdout\n"
        "    return pq.read_table(io.BytesIO(body)).num_rows\n"
    ),
}

# Reads until ``SECONDS`` have passed (at least once), a pause between reads; prints
# what it read and what failed, as JSON.  It ends with os._exit: what is tested is
# the reads, and a native runtime's threads can abort the interpreter's own exit
# ("terminate called without an active exception" seen once from deltalake).
LOOP = (
    "import json, os, sys, time\n"
    "SECONDS, PAUSE = %(seconds)r, %(pause)r\n"
    "rows, failed, first = [], 0, None\n"
    "end = time.time() + SECONDS\n"
    "while True:\n"
    "    try:\n"
    "        rows.append(read())\n"
    "    except Exception as err:\n"
    "        failed += 1\n"
    "        first = first or repr(err)[-600:]\n"
    "    if time.time() >= end:\n"
    "        break\n"
    "    time.sleep(PAUSE)\n"
    "print(json.dumps({'rows': rows, 'failed': failed, 'first_error': first}))\n"
    "sys.stdout.flush()\n"
    "os._exit(0)\n"
)


def reader_code(name, proxy, bucket, seconds=0.0, pause=0.0):
    host = proxy.url.split("://", 1)[1]
    read = READERS[name] % {"url": proxy.url, "host": host, "bucket": bucket}
    return read + LOOP % {"seconds": seconds, "pause": pause}


def reader_env(endpoint):
    env = native_env(endpoint)  # no IRSA: the endpoint's two variables only
    env.update(AWS_REGION="us-east-1", AWS_DEFAULT_REGION="us-east-1")
    return env


def run_reader(name, proxy, bucket, endpoint, seconds=0.0, pause=0.0):
    out = run_python(reader_code(name, proxy, bucket, seconds, pause), env=reader_env(endpoint),
                     timeout=seconds + 180)
    return json.loads(out.decode().strip().splitlines()[-1])


@pytest.fixture
def tables(proxy, bucket, moto_server, tmp_path):
    """The bucket, with a delta table and a lance dataset beside readings.parquet
    (written locally, then put on moto directly)."""
    table = pa.table({"city": ["oslo", "lima", "cairo"], "reading": [3, 19, 27]})
    deltalake.write_deltalake(str(tmp_path / "delta" / "readings"), table)
    lance.write_dataset(table, str(tmp_path / "lance" / "readings.lance"))
    s3 = boto3.client("s3", endpoint_url=moto_server.url, region_name="us-east-1",
                      aws_access_key_id="testing", aws_secret_access_key="testing")
    for folder, _, files in os.walk(str(tmp_path)):
        for name in files:
            path = os.path.join(folder, name)
            key = os.path.relpath(path, str(tmp_path)).replace(os.sep, "/")
            with open(path, "rb") as handle:
                s3.put_object(Bucket=bucket, Key=key, Body=handle.read())
    return bucket


@pytest.mark.parametrize("name", sorted(READERS))
def test_each_native_reader_reads_with_the_endpoint_s_credentials(name, proxy, tables, fake_env):
    with irsa_session.serve() as endpoint:
        result = run_reader(name, proxy, tables, endpoint)
    assert result == {"rows": [ROWS_IN_TABLE], "failed": 0, "first_error": None}
    assert_all_signed_by_issued(proxy, fake_env)
    assert proxy.keys() == [fake_env.issued[0]["access_key"]]
    assert len(assume_calls(fake_env)) == 1


LIFE = 20.0  # seconds each set of credentials lives in the soak
LIFETIMES = 3


def test_every_reader_at_once_across_several_lifetimes_one_sts_call_each_none_refused_but_duckdb_s(
    proxy, tables, fake_env
):
    """All the readers read every second through three credential lifetimes, each in
    its own process, all on one endpoint: no read fails, no request is refused but
    duckdb's just after expiry, and the endpoint makes one STS call per lifetime for
    all of them."""
    fake_env.set_mode(duration=int(LIFE), honor_duration=False)
    seconds = LIFE * LIFETIMES
    results, threads = {}, []
    with irsa_session.serve() as endpoint:
        for name in sorted(READERS):
            def work(name=name):
                try:
                    results[name] = run_reader(name, proxy, tables, endpoint, seconds, pause=1.0)
                except Exception as err:  # reported below, by name
                    results[name] = {"rows": [], "failed": -1, "first_error": str(err)[-2000:]}
            threads.append(threading.Thread(target=work))
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
    broken = dict((name, r) for name, r in results.items()
                  if r["failed"] or set(r["rows"]) != {ROWS_IN_TABLE})
    assert broken == {}
    assert set(proxy.keys()) <= set(c["access_key"] for c in fake_env.issued)
    # None is refused but duckdb's: its secret holds the keys it read, and REFRESH auto
    # reads them again only after S3 refuses them (each query still succeeds).
    refused = [seen for seen in proxy.seen if seen.verdict != "ok"]
    assert sorted(set(seen.user_agent.split("/")[0] for seen in refused)) in ([], ["duckdb"])
    assert set(seen.verdict for seen in refused) <= {"ExpiredToken"}
    late = [seen.time - fake_env.key(seen.access_key)["expiration"] for seen in refused]
    calls = len(assume_calls(fake_env))
    # Each set serves from its issue to its refresh, in its advisory window.
    most = 1 + int(math.ceil(seconds / (LIFE - advisory_span(LIFE))))
    assert LIFETIMES <= calls <= most, calls
    assert len(set(proxy.keys())) >= LIFETIMES  # the readers moved to new keys
    print("soak: %s reads, %d STS calls, %d keys, %d requests; duckdb's refused: %d, "
          "up to %.1f s after expiry" % (
              dict((name, len(r["rows"])) for name, r in sorted(results.items())), calls,
              len(set(proxy.keys())), len(proxy.seen), len(refused), max(late or [0])))


def test_deltalake_and_polars_in_another_process_share_serve_s_one_sts_call(proxy, bucket, fake_env):
    uri = "s3://%s/delta/%s" % (bucket, uuid.uuid4().hex[:8])
    with irsa_session.serve() as endpoint:
        code = (
            "import deltalake, polars as pl, pyarrow as pa\n"
            "opts = dict(%r, AWS_S3_ALLOW_UNSAFE_RENAME='true')\n"
            "deltalake.write_deltalake(%r, pa.table({'city': ['oslo', 'lima']}), storage_options=opts)\n"
            "for _ in range(3):\n"
            "    print(deltalake.DeltaTable(%r, storage_options=opts).to_pyarrow_table().num_rows)\n"
            "print(pl.read_delta(%r, storage_options=opts).height)\n" % (options(proxy), uri, uri, uri)
        )
        out = run_python(code, env=reader_env(endpoint), timeout=120).decode().split()
    assert out == ["2", "2", "2", "2"]
    assert_all_signed_by_issued(proxy, fake_env)
    assert proxy.keys() == [fake_env.issued[0]["access_key"]]
    assert len(assume_calls(fake_env)) == 1  # one exchange, the endpoint's, for every read


@pytest.fixture
def parquet_object(proxy, bucket, moto_server):
    out = io.BytesIO()
    pl.DataFrame({"reading": [3, 19, 27]}).write_parquet(out)
    boto3.client(
        "s3", endpoint_url=moto_server.url, region_name="us-east-1",
        aws_access_key_id="testing", aws_secret_access_key="testing",
    ).put_object(Bucket=bucket, Key="raw/polars.parquet", Body=out.getvalue())
    return "s3://%s/raw/polars.parquet" % bucket


def test_polars_after_install_through_boto3(proxy, parquet_object, fake_env):
    irsa_session.install()
    frame = pl.read_parquet(parquet_object, storage_options=options(proxy),
                            credential_provider=pl.CredentialProviderAWS())
    assert frame["reading"].sum() == 49
    assert_all_signed_by_issued(proxy, fake_env)
    assert len(assume_calls(fake_env)) == 1


def test_polars_with_a_credential_provider_callable(proxy, parquet_object, fake_env):
    def provider():
        credentials = irsa_session.session.get_credentials()
        frozen = credentials.get_frozen_credentials()
        keys = {"aws_access_key_id": frozen.access_key, "aws_secret_access_key": frozen.secret_key,
                "aws_session_token": frozen.token}
        return keys, int(credentials.expires_at.timestamp())

    for _ in range(3):
        assert pl.read_parquet(parquet_object, storage_options=options(proxy), credential_provider=provider).height == 3
    assert_all_signed_by_issued(proxy, fake_env)
    assert len(assume_calls(fake_env)) == 1


MANIFEST = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "examples", "serve-sidecar.yaml")
MOUNT = "/var/run/irsa-session"


def test_the_sidecar_manifest_works_as_written(proxy, bucket, fake_env, tmp_path):
    """examples/serve-sidecar.yaml's sidecar command, its probe and the app's environment,
    run here with the volume at a temporary folder: the app reads S3 with the
    sidecar's credentials and no IRSA variable of its own."""
    import subprocess
    import sys
    import time

    import yaml

    with open(MANIFEST) as handle:
        pod = yaml.safe_load(handle.read().replace(MOUNT, str(tmp_path)))
    sidecar, = pod["spec"]["initContainers"]
    app, = pod["spec"]["containers"]
    assert sidecar["restartPolicy"] == "Always"  # a native sidecar
    assert pod["metadata"]["annotations"]["eks.amazonaws.com/skip-containers"] == app["name"]

    def here(command):  # the image's programs, from this interpreter
        head = {"irsa-session": [sys.executable, "-m", "irsa_session"], "python": [sys.executable]}
        return head[command[0]] + command[1:]

    server = subprocess.Popen(here(sidecar["command"]), stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    try:
        probe = sidecar["startupProbe"]
        for _ in range(probe["failureThreshold"]):
            if subprocess.run(here(probe["exec"]["command"]), stderr=subprocess.DEVNULL).returncode == 0:
                break
            assert server.poll() is None, server.communicate()
            time.sleep(probe["periodSeconds"])
        else:
            raise AssertionError("the startup probe never passed")
        env = dict((name, None) for name in os.environ if name.startswith("AWS_"))
        env.update((pair["name"], pair["value"]) for pair in app["env"])
        env.update(AWS_CONFIG_FILE=os.devnull, AWS_SHARED_CREDENTIALS_FILE=os.devnull)
        code = (
            "import boto3\n"
            "s3 = boto3.client('s3', endpoint_url=%r)\n"
            "print(len(s3.get_object(Bucket=%r, Key='raw/readings.csv')['Body'].read()))\n"
            "print(boto3.Session().get_credentials().method)\n" % (proxy.url, bucket)
        )
        out = run_python(code, env=env).decode().split()
        assert out[1] == "container-role"
        assert int(out[0]) > 0
        assert_all_signed_by_issued(proxy, fake_env)
        assert len(assume_calls(fake_env)) == 1
        token_file = dict((pair["name"], pair["value"]) for pair in app["env"])["AWS_CONTAINER_AUTHORIZATION_TOKEN_FILE"]
        assert os.path.exists(token_file)
    finally:
        server.terminate()
        _, err = server.communicate(timeout=30)
    assert server.returncode == 0, err
    assert not os.path.exists(token_file)  # stopped: the token is gone
