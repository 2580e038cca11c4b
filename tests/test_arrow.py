"""pyarrow on the library's credentials: arrow_filesystem() (issue 11, part 2).

As in test_aio.py, S3 is moto behind the checking proxy (irsa_testing/s3proxy.py),
which refuses keys the FakeSTS did not issue or that expired and records
which key signed each request; every test counts the STS calls.
"""

import inspect
import os
import pickle
import subprocess
import sys
import time

import pytest

from irsa_testing.rows import need

ROWS = ("tests-data", "examples-ray-legacy")  # their job is to run this module: no skips there
pa = need("pyarrow", ROWS)
pafs = need("pyarrow.fs", ROWS)
pq = need("pyarrow.parquet", ROWS)
ds = need("pyarrow.dataset", ROWS)

import irsa_session  # noqa: E402
from irsa_session import ConfigError, _arrow_impl, _background  # noqa: E402
from irsa_testing import ROLE_ARN  # noqa: E402
from irsa_testing.datastack import (  # noqa: E402,F401  (fixtures)
    BLOB,
    assert_all_signed_by_issued,
    assume_calls,
    bucket,
    native_env,
    pod_identity_pod,
    proxy,
    run_python,
)
from irsa_testing.leaks import assert_clean, secrets_of  # noqa: E402


@pytest.fixture
def s3_env(proxy, monkeypatch):
    """pyarrow finds S3 at the proxy through AWS_ENDPOINT_URL_S3, as botocore does."""
    monkeypatch.setenv("AWS_ENDPOINT_URL_S3", proxy.url)
    return proxy


def test_parquet_dataset_pandas_and_copy_files_share_one_sts_call_with_boto3(
    s3_env, bucket, fake_env, tmp_path
):
    fs = irsa_session.arrow_filesystem()
    assert isinstance(fs, pafs.FileSystem)
    table = pq.read_table("%s/raw/readings.parquet" % bucket, filesystem=fs)
    assert table.column("city").to_pylist() == ["oslo", "lima", "cairo"]

    pq.write_table(table, "s3://%s/out/copy.parquet" % bucket, filesystem=fs)
    pq.write_to_dataset(table, "%s/out/dataset" % bucket, filesystem=fs, partition_cols=["city"])
    read_back = ds.dataset("%s/out/dataset" % bucket, filesystem=fs, partitioning="hive").to_table()
    assert sorted(read_back.column("reading").to_pylist()) == [3, 19, 27]

    import pandas as pd

    frame = pd.read_parquet("s3://%s/out/copy.parquet" % bucket, filesystem=fs)
    assert frame.reading.sum() == 49

    local = tmp_path / "checkpoint"
    local.mkdir()
    (local / "model.bin").write_bytes(BLOB)
    pafs.copy_files(str(local), "%s/ckpt" % bucket, destination_filesystem=fs)  # Ray Train's way
    with fs.open_input_file("%s/ckpt/model.bin" % bucket) as handle:
        assert handle.read() == BLOB

    # boto3 in the same process: no new exchange (botocore 1.8 reads no AWS_ENDPOINT_URL_S3)
    s3 = irsa_session.session.client("s3", endpoint_url=s3_env.url)
    assert s3.head_object(Bucket=bucket, Key="out/copy.parquet")["ContentLength"] > 0

    assert len(assume_calls(fake_env)) == 1
    assert_all_signed_by_issued(s3_env, fake_env)
    assert s3_env.keys() == [fake_env.issued[0]["access_key"]]
    agents = set(s.user_agent.split("/")[0] for s in s3_env.seen)
    assert {"aws-sdk-cpp", "Boto3"} <= agents


def test_pickles_as_settings_and_rebuilds_in_the_receiving_process(
    proxy, bucket, fake_env, irsa_env
):
    fs = irsa_session.arrow_filesystem(endpoint_override=proxy.url, region="us-east-1")
    assert fs.get_file_info("%s/raw/blob.bin" % bucket).size == len(BLOB)
    data = pickle.dumps(fs)
    assert_clean([data, repr(fs.handler)], secrets_of(fake_env, token_files=[irsa_env]))
    assert pickle.loads(data).equals(fs)
    started = time.monotonic()
    out = run_python(
        "import pickle, sys\n"
        "import pyarrow.parquet as pq\n"
        "fs = pickle.loads(sys.stdin.buffer.read())\n"
        "table = pq.read_table(%r, filesystem=fs)\n"
        "print(table.num_rows, type(fs.handler).__name__)\n" % ("%s/raw/readings.parquet" % bucket),
        stdin=data,
    )
    assert out.decode().split() == ["3", "Handler"]
    assert time.monotonic() - started < 20  # and the child did not hang at exit
    assert len(assume_calls(fake_env)) == 2  # the receiver made its own credentials
    assert len(proxy.keys()) == 2
    assert_all_signed_by_issued(proxy, fake_env)


def test_rebuilt_when_credentials_refresh_while_open_streams_finish_on_theirs(
    proxy, bucket, fake_env
):
    # 12-second credentials: refresh starts 3 s before expiry, the mandatory
    # window 2 s before it; the proxy refuses a key from its expiry on.
    fake_env.set_mode(duration=12, honor_duration=False)
    fs = irsa_session.arrow_filesystem(endpoint_override=proxy.url)
    path = "%s/raw/blob.bin" % bucket
    stream = fs.open_input_file(path)
    head = stream.read(1024)
    first = fake_env.issued[0]["access_key"]
    credentials = fs.handler.credentials
    while time.time() <= credentials.refresh_at.timestamp():  # until the refresh is due
        time.sleep(0.05)
    credentials.get_frozen_credentials()  # the first use in the window: refreshed in the background
    assert _background.idle(10)

    assert fs.get_file_info(path).size == len(BLOB)  # a new call: new credentials, new native fs
    second = fake_env.issued[-1]["access_key"]
    assert second != first
    rest = stream.read()  # the open stream goes on, on the key it was opened with
    stream.close()
    assert head + rest == BLOB
    with fs.open_input_stream(path) as fresh:
        assert fresh.read() == BLOB

    assert_all_signed_by_issued(proxy, fake_env)
    assert proxy.keys() == [first, second]
    signed = [(s.method, s.access_key) for s in proxy.seen]
    rotation = signed.index(("HEAD", second))  # get_file_info, the first call on the new key
    assert ("GET", first) in signed[rotation:]  # the old stream read on after it, on its own key
    assert len(assume_calls(fake_env)) == 2


def test_credential_options_are_refused(irsa_env):
    for option in ("access_key", "secret_key", "session_token", "role_arn", "anonymous"):
        with pytest.raises(ConfigError) as caught:
            irsa_session.arrow_filesystem(**{option: "x"})
        assert option in str(caught.value)


def test_without_irsa_settings_it_is_pyarrows_own_filesystem(monkeypatch):
    monkeypatch.setenv("AWS_REGION", "eu-west-1")
    fs = irsa_session.arrow_filesystem()
    assert isinstance(fs, pafs.S3FileSystem)
    assert fs.region == "eu-west-1"
    del fs


def test_equal_settings_and_options_make_equal_filesystems(fake_env):
    one = irsa_session.arrow_filesystem(region="us-east-1")
    assert one.equals(irsa_session.arrow_filesystem(region="us-east-1"))
    assert not one.equals(irsa_session.arrow_filesystem(region="eu-west-1"))
    assert ROLE_ARN in repr(one.handler)
    assert one.normalize_path("s3://bucket/key") == "bucket/key"
    assert assume_calls(fake_env) == []  # building, comparing, resolving paths fetch nothing


def test_endpoint_from_the_environment_as_botocore_reads_it():
    endpoint = _arrow_impl._configured_endpoint
    assert endpoint({"AWS_ENDPOINT_URL_S3": "http://s3.local", "AWS_ENDPOINT_URL": "x"}) == "http://s3.local"
    assert endpoint({"AWS_ENDPOINT_URL": "http://all.local"}) == "http://all.local"
    assert endpoint({"AWS_ENDPOINT_URL": "http://all.local",
                     "AWS_IGNORE_CONFIGURED_ENDPOINT_URLS": "true"}) is None
    assert endpoint({}) is None


@pytest.fixture
def ray_cluster(tmp_path, monkeypatch):
    """A local Ray of 2 CPUs whose processes see this one's AWS_* and IRSA_* variables,
    and share a node cache."""
    ray = need("ray", ROWS)
    monkeypatch.setenv("IRSA_SESSION_CACHE_DIR", str(tmp_path / "node-cache"))
    env = dict((k, v) for k, v in os.environ.items() if k.startswith(("AWS_", "IRSA_")))
    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False,
             runtime_env={"env_vars": env}, _node_ip_address="127.0.0.1")
    try:
        yield ray
    finally:
        ray.shutdown()


def test_ray_data_reads_in_worker_processes_with_one_sts_call_per_node(ray_cluster, proxy, bucket, fake_env):
    # With the node cache, the driver and the workers (each its own process,
    # one node) share one STS call; without it, this run made 5.
    ray = ray_cluster
    fs = irsa_session.arrow_filesystem(endpoint_override=proxy.url, region="us-east-1")

    def with_pid(batch):  # defined here: Ray pickles it by value, not by module
        batch["pid"] = os.getpid()
        return batch

    # Bare bucket/key paths: Ray resolves s3:// URIs with pyarrow's own filesystem.
    tables = ["%s/raw/readings.parquet" % bucket, "%s/raw/readings-2.parquet" % bucket]
    fs.copy_file(*tables)  # two files: Ray reads a path given twice once
    blocks = "override_num_blocks" if "override_num_blocks" in signature(ray.data.read_parquet) else "parallelism"
    dataset = ray.data.read_parquet(tables, filesystem=fs, **{blocks: 2})  # Ray 2.3 says parallelism
    rows = dataset.map_batches(with_pid, batch_format="pandas").take_all()
    assert sorted(row["reading"] for row in rows) == [3, 3, 19, 19, 27, 27]
    readers = set(row["pid"] for row in rows)
    assert os.getpid() not in readers  # read by Ray's worker processes, not here

    @ray.remote(num_cpus=1)
    def rows_in(filesystem, path):
        import pyarrow.parquet as pq

        time.sleep(1)  # the two tasks overlap: two worker processes, one CPU each
        return os.getpid(), pq.read_table(path, filesystem=filesystem).num_rows

    done = ray.get([rows_in.remote(fs, path) for path in tables])
    assert [rows for _, rows in done] == [3, 3]
    assert len(set(pid for pid, _ in done)) == 2
    assert_all_signed_by_issued(proxy, fake_env)
    assert set(s.user_agent.split("/")[0] for s in proxy.seen) == {"aws-sdk-cpp"}
    assert len(assume_calls(fake_env)) == 1, readers | set(pid for pid, _ in done)


def test_ray_train_persists_checkpoints_through_storage_filesystem(ray_cluster, proxy, bucket, fake_env):
    from ray import train

    if "storage_filesystem" not in signature(getattr(train, "RunConfig", None)):
        pytest.skip("this Ray (%s) has no RunConfig(storage_filesystem=)" % ray_cluster.__version__)
    try:  # Ray Train v2 (the default from Ray 2.5x), then v1
        from ray.train.v2.api.data_parallel_trainer import DataParallelTrainer
    except ImportError:
        from ray.train.data_parallel_trainer import DataParallelTrainer
    fs = irsa_session.arrow_filesystem(endpoint_override=proxy.url, region="us-east-1")

    def loop(config):
        import tempfile

        with tempfile.TemporaryDirectory() as folder:
            with open(os.path.join(folder, "weights.bin"), "wb") as handle:
                handle.write(b"w" * 100)
            train.report({"loss": 0.5}, checkpoint=train.Checkpoint.from_directory(folder))

    trainer = DataParallelTrainer(
        loop,
        scaling_config=train.ScalingConfig(num_workers=1),
        run_config=train.RunConfig(name="irsa", storage_path="%s/ray-train" % bucket, storage_filesystem=fs),
    )
    assert trainer.fit().checkpoint is not None
    stored = fs.get_file_info(pafs.FileSelector("%s/ray-train" % bucket, recursive=True))
    assert any(info.path.endswith("/weights.bin") for info in stored)
    assert_all_signed_by_issued(proxy, fake_env)
    assert set(s.user_agent.split("/")[0] for s in proxy.seen) == {"aws-sdk-cpp"}
    assert len(assume_calls(fake_env)) == 1  # the training worker too, through the node cache


def signature(function):
    """The names of a callable's parameters (none if it is not one)."""
    try:
        return inspect.signature(function).parameters
    except (TypeError, ValueError):
        return {}


def test_import_and_install_import_no_pyarrow(fake_env):
    out = run_python(
        "import sys\n"
        "import irsa_session\n"
        "irsa_session.install()\n"
        "print('pyarrow' in sys.modules, callable(irsa_session.arrow_filesystem))\n"
    )
    assert out.decode().split() == ["False", "True"]


def test_the_data_stack_example_runs_end_to_end(tmp_path):
    """examples/data_stack.py: pandas, s3fs, pyarrow and Ray Data, every request signed by an issued key."""
    for module in ("ray", "pandas", "s3fs"):
        need(module, ("tests-data",))  # the examples-ray-legacy row has no s3fs
    here = os.path.dirname(os.path.abspath(__file__))
    script = os.path.join(os.path.dirname(here), "examples", "data_stack.py")
    out = subprocess.run(
        [sys.executable, script], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
        universal_newlines=True, timeout=600, cwd=str(tmp_path),
        env=dict(os.environ, RAY_USAGE_STATS_ENABLED="0"),
    )
    assert out.returncode == 0, out.stderr[-3000:]
    for line in ("pandas read_csv (s3fs):        4 rows", "pyarrow.parquet (arrow fs):    4 rows",
                 "pandas read_parquet (arrow fs): 4 rows", "sum of readings 114 over 2 files"):
        assert line in out.stdout, out.stdout
    requests = [line for line in out.stdout.splitlines() if line.startswith("S3 requests:")][0]
    assert ", 0 refused;" in requests and "all issued by STS: True" in requests
    keys = int(requests.split("signed by ")[1].split(" key")[0])
    calls = int([line for line in out.stdout.splitlines() if line.startswith("STS calls:")][0].split()[2])
    assert keys == calls >= 2  # one STS call per process: the driver and each Ray worker used


def test_in_a_pod_identity_pod_the_filesystem_uses_the_agent_s_credentials(pod_identity_pod, bucket):
    agent, proxy = pod_identity_pod, pod_identity_pod.proxy
    fs = irsa_session.arrow_filesystem(endpoint_override=proxy.url, region="us-east-1")
    assert isinstance(fs, pafs.PyFileSystem)  # not pyarrow's own chain
    assert fs.get_file_info("%s/raw/blob.bin" % bucket).size == len(BLOB)
    assert proxy.keys() == [agent.issued[0]["access_key"]] and agent.call_count == 1
    assert [s.verdict for s in proxy.seen] == ["ok"] * len(proxy.seen)
    assert pickle.loads(pickle.dumps(fs)).equals(fs)


def test_after_install_with_a_chained_role_the_filesystem_is_that_role(proxy, bucket, fake_env, monkeypatch):
    from irsa_testing.chainsts import ChainSTS

    target = "arn:aws:iam::444455556666:role/cross/reader"
    with ChainSTS(trust={target: {"principals": [ROLE_ARN]}}) as sts:
        monkeypatch.setenv("AWS_ENDPOINT_URL_STS", sts.url)
        proxy.issued = lambda: sts.issued
        irsa_session.install(assume_role=target)
        fs = irsa_session.arrow_filesystem(endpoint_override=proxy.url, region="us-east-1")
        assert fs.get_file_info("%s/raw/blob.bin" % bucket).size == len(BLOB)
        (key,) = proxy.keys()
        assert sts.key(key)["role_arn"] == target
        assert pickle.loads(pickle.dumps(fs)).equals(fs)


@pytest.mark.parametrize("left, min_life", [(5, None), (7, 9)])
def test_a_stream_opens_with_credentials_that_outlive_it(proxy, bucket, fake_env, left, min_life):
    """12-second credentials: a stream opened with 5 s of them left would read on an
    expired key; it opens on credentials with half their life left (6 s), or with
    stream_min_life (9 s) where 7 s would be enough for the default."""
    fake_env.set_mode(duration=12, honor_duration=False)
    options = {} if min_life is None else {"stream_min_life": min_life}
    fs = irsa_session.arrow_filesystem(endpoint_override=proxy.url, **options)
    path = "%s/raw/blob.bin" % bucket
    assert fs.get_file_info(path).size == len(BLOB)
    first = fake_env.issued[0]
    while first["expiration"] - time.time() > left:
        time.sleep(0.05)
    stream = fs.open_input_file(path)
    read = []
    while time.time() < first["expiration"] + 1.5:  # reads on past the first key's expiry
        read.append(stream.read(1024))
        time.sleep(0.1)
    stream.close()
    assert [s.verdict for s in proxy.seen] == ["ok"] * len(proxy.seen)
    second = fake_env.issued[1]["access_key"]
    gets = [s.access_key for s in proxy.seen if s.method == "GET"]
    assert gets and set(gets) == {second}  # every read on the key the stream opened with
    assert len(fake_env.calls) == 2
    assert pickle.loads(pickle.dumps(fs)).equals(fs)


def test_stream_min_life_is_checked(irsa_env):
    for bad in (-1, "ten", True, 50000):
        with pytest.raises(ConfigError) as caught:
            irsa_session.arrow_filesystem(stream_min_life=bad)
        assert "stream_min_life" in str(caught.value)


def test_pyarrow_s_own_filesystem_reads_through_serve(proxy, bucket, fake_env):
    """The AWS SDK for C++ in pyarrow, with no help from Python, on the endpoint's credentials."""
    if os.environ.get("IRSA_TEST_ROW") != "tests-data":
        # pyarrow 6.0.1's SDK (the examples-ray-legacy row) reads no
        # AWS_CONTAINER_AUTHORIZATION_TOKEN_FILE: "AWS Error [code 15]: No response body".
        pytest.skip("the newest pyarrow's SDK (the tests-data row) reads the token file")
    with irsa_session.serve() as endpoint:
        env = native_env(endpoint)  # no IRSA: the endpoint's two variables only
        code = (
            "import pyarrow.fs as pafs\n"
            "fs = pafs.S3FileSystem(endpoint_override=%r, region='us-east-1')\n"
            "print(fs.get_file_info(%r).size)\n" % (proxy.url, "%s/raw/blob.bin" % bucket)
        )
        out = run_python(code, env=env, timeout=60)
    assert out.decode().strip() == str(len(BLOB))
    assert proxy.keys() == [fake_env.issued[0]["access_key"]]
    assert [s.verdict for s in proxy.seen] == ["ok"] * len(proxy.seen)
    assert fake_env.call_count == 1


def test_after_install_pd_read_parquet_of_an_s3_url_reads_with_the_library_s_credentials(s3_env, bucket, fake_env):
    """Issue 26: it went to pyarrow's own S3 client (ACCESS_DENIED on loopback, its own
    exchange in a pod).  pandas imported before install(), and after it."""
    pd = need("pandas", ROWS)
    if "filesystem" not in inspect.signature(pd.read_parquet).parameters:
        irsa_session.install()  # pandas before 2.1 (Ray 2.3's row) takes no filesystem: left alone
        assert not getattr(pd.read_parquet, "irsa_session_wrapped", False)
        return
    url = "s3://%s/raw/readings.parquet" % bucket
    irsa_session.install()
    assert pd.read_parquet(url)["reading"].sum() == 49
    assert pd.read_parquet(url, columns=["city"]).shape == (3, 1)
    out = run_python(
        "import sys, irsa_session\n"
        "irsa_session.install()\n"
        "assert 'pandas' not in sys.modules\n"
        "import pandas as pd\n"
        "print(pd.read_parquet(%r).shape)\n" % url
    )
    assert out.decode().strip() == "(3, 2)"
    assert_all_signed_by_issued(s3_env, fake_env)
    assert len(assume_calls(fake_env)) == 2  # this process, and the other one


def test_read_parquet_calls_install_does_not_touch_go_to_pandas_unchanged(s3_env, bucket, fake_env, tmp_path):
    pd = need("pandas", ROWS)
    if "filesystem" not in inspect.signature(pd.read_parquet).parameters:
        return  # not wrapped there (above)
    local = tmp_path / "local.parquet"
    pd.DataFrame({"a": [1, 2]}).to_parquet(str(local))
    irsa_session.install()
    assert pd.read_parquet(str(local)).shape == (2, 1)  # a local path
    fs = irsa_session.arrow_filesystem()
    assert pd.read_parquet("%s/raw/readings.parquet" % bucket, filesystem=fs).shape == (3, 2)
    from irsa_session import _pandas

    assert _pandas._ours("s3://b/k", (), {"storage_options": {}}) is False  # s3fs's way
    assert _pandas._ours("s3://b/k", ("fastparquet",), {}) is False
    assert _pandas._ours("S3://b/k", (), {}) is True
