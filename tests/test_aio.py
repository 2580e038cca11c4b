"""aiobotocore, s3fs and pandas on the library's credentials (issue 11, part 1).

Every S3 request goes through the checking proxy (irsa_testing/s3proxy.py), which
rejects keys the FakeSTS did not issue or that expired and records which key
signed each request; every test counts the STS calls.
"""

import asyncio
import inspect
import logging
import os
import pickle
import threading
import time

import pytest

from irsa_testing.rows import need  # noqa: E402

ROWS = ("tests-data",)  # its job is to run this module: no skips there
aiobotocore_session = need("aiobotocore.session", ROWS)
s3fs = need("s3fs", ROWS)
pd = need("pandas", ROWS)
need("pyarrow", ROWS)

import boto3  # noqa: E402

import irsa_session  # noqa: E402
from irsa_session import ConfigError, RefreshError, _aio, _aio_impl  # noqa: E402
from irsa_testing import ROLE_ARN  # noqa: E402
from irsa_testing.datastack import (  # noqa: E402,F401  (fixtures)
    BLOB,
    assert_all_signed_by_issued,
    CSV,
    assume_calls,
    bucket,
    pod_identity_pod,
    proxy,
    run_python,
)
from irsa_testing.leaks import assert_clean, secrets_of  # noqa: E402
from irsa_testing.processes import in_flight  # noqa: E402


@pytest.fixture(autouse=True)
def clean_aio():
    """No filesystem cached by fsspec, nor aio chain, outlives a test."""
    s3fs.S3FileSystem.clear_instance_cache()
    yield
    s3fs.S3FileSystem.clear_instance_cache()
    _aio.install(None)


@pytest.fixture
def s3_env(proxy, monkeypatch):
    """Unchanged code finds S3 at the proxy, as a pod finds it at AWS."""
    monkeypatch.setenv("AWS_ENDPOINT_URL_S3", proxy.url)
    return proxy


def install():
    installed = irsa_session.install()
    assert _aio.installed_credentials() is installed._irsa_credentials, (
        "sessions.install() does not hand its credentials to _aio.install()"
    )
    return installed


def run(coroutine):
    return asyncio.run(coroutine)


async def chain_credentials(**session_kwargs):
    return await aiobotocore_session.AioSession(**session_kwargs).get_credentials()


# -- install(): unchanged code -------------------------------------------------


def test_install_reaches_unchanged_s3fs_pandas_and_boto3_with_one_sts_call(
    s3_env, bucket, fake_env
):
    install()
    url = "s3://%s/raw/" % bucket

    assert boto3.client("s3").get_object(Bucket=bucket, Key="raw/readings.csv")["Body"].read() == CSV
    assert s3fs.S3FileSystem().cat(url + "blob.bin") == BLOB
    frame = pd.read_csv(url + "readings.csv")
    assert list(frame.city) == ["oslo", "lima", "cairo"]
    table = pd.read_parquet(url + "readings.parquet", storage_options={"anon": False})
    assert table.reading.sum() == 49

    assert len(assume_calls(fake_env)) == 1
    assert_all_signed_by_issued(s3_env, fake_env)
    assert s3_env.keys() == [fake_env.issued[0]["access_key"]]
    agents = set(s.user_agent.split("/")[0] for s in s3_env.seen)
    assert {"Boto3", "aiobotocore"} <= agents


def test_install_reaches_unchanged_dask_through_s3fs(s3_env, bucket, fake_env):
    dd = need("dask.dataframe", ROWS)
    install()
    assert boto3.client("s3").head_object(Bucket=bucket, Key="raw/readings.csv")["ContentLength"]
    frame = dd.read_csv("s3://%s/raw/readings.csv" % bucket)  # dask's default scheduler: threads
    assert int(frame.reading.sum().compute()) == 49
    table = dd.read_parquet("s3://%s/raw/readings.parquet" % bucket)
    assert sorted(table.city.compute()) == ["cairo", "lima", "oslo"]
    assert len(assume_calls(fake_env)) == 1
    assert_all_signed_by_issued(s3_env, fake_env)
    assert s3_env.keys() == [fake_env.issued[0]["access_key"]]  # one exchange for boto3 and dask
    assert {"Boto3", "aiobotocore"} <= set(s.user_agent.split("/")[0] for s in s3_env.seen)


def test_without_install_aiobotocore_makes_its_own_exchange(s3_env, bucket, fake_env):
    # The control for the count above: unchanged code, no install(), two exchanges.
    assert boto3.client("s3").get_object(Bucket=bucket, Key="raw/readings.csv")["Body"].read() == CSV
    assert s3fs.S3FileSystem().cat("s3://%s/raw/blob.bin" % bucket) == BLOB
    assert len(assume_calls(fake_env)) == 2
    assert len(s3_env.keys()) == 2
    assert_all_signed_by_issued(s3_env, fake_env)


def test_install_before_aiobotocore_is_imported_patches_it_on_import(fake_env):
    out = run_python(
        "import sys, asyncio\n"
        "import irsa_session\n"
        "assert 'aiobotocore' not in sys.modules, 'import irsa_session imported aiobotocore'\n"
        "irsa_session.install()\n"
        "assert 'aiobotocore' not in sys.modules, 'install() imported aiobotocore'\n"
        "import s3fs, aiobotocore.session\n"
        "creds = asyncio.run(aiobotocore.session.AioSession().get_credentials())\n"
        "print(type(creds).__name__, creds.method)\n"
        "from irsa_session import _imports\n"
        "print('aiobotocore.session' in _imports._waiting)\n"
    )
    assert out.decode().split() == ["AioCredentials", "irsa-session", "False"]
    assert assume_calls(fake_env) == []  # resolving the chain fetches nothing


def test_aio_install_imports_nothing_then_patches_aiobotocore_when_imported(fake_env):
    # _aio.install() alone (what sessions.install() calls), timed in a fresh process.
    out = run_python(
        "import sys, time, asyncio\n"
        "import irsa_session\n"
        "from irsa_session import _aio\n"
        "credentials = irsa_session.refreshable_credentials()\n"
        "started = time.perf_counter()\n"
        "_aio.install(credentials)\n"
        "took = time.perf_counter() - started\n"
        "assert 'aiobotocore' not in sys.modules\n"
        "import aiobotocore.session\n"
        "found = asyncio.run(aiobotocore.session.AioSession().get_credentials())\n"
        "print(found._irsa is credentials, took)\n"
    )
    same, took = out.decode().split()
    assert same == "True"
    print("_aio.install() took %.1f ms" % (float(took) * 1000))  # a figure, not a bound


def test_env_keys_and_a_chosen_profile_still_win(fake_env, monkeypatch, tmp_path):
    installed = install()
    ours = run(chain_credentials())
    assert ours.method == "irsa-session" and ours._irsa is installed._irsa_credentials

    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "AKIAENVKEYS000000000")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "env-secret")
    assert run(chain_credentials()).method == "env"
    monkeypatch.delenv("AWS_ACCESS_KEY_ID")
    monkeypatch.delenv("AWS_SECRET_ACCESS_KEY")

    credentials_file = tmp_path / "credentials"
    credentials_file.write_text(
        "[analyst]\naws_access_key_id = AKIAPROFILE000000000\naws_secret_access_key = s\n"
    )
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", str(credentials_file))
    assert run(chain_credentials(profile="analyst")).method == "shared-credentials-file"
    monkeypatch.setenv("AWS_PROFILE", "analyst")
    assert run(chain_credentials()).method == "shared-credentials-file"
    assert assume_calls(fake_env) == []


def test_installed_provider_goes_before_container_and_instance_metadata(fake_env):
    install()
    session = aiobotocore_session.AioSession()
    methods = [p.METHOD for p in session._components.get_component("credential_provider").providers]
    ours = methods.index("irsa-session")
    assert methods[:ours] == ["env", "assume-role"]
    assert methods.index("container-role") > ours and methods.index("iam-role") > ours


def test_install_none_restores_aiobotocore_chain(fake_env):
    install()
    _aio.install(None)
    session = aiobotocore_session.AioSession()
    methods = [p.METHOD for p in session._components.get_component("credential_provider").providers]
    assert "irsa-session" not in methods


def test_a_failure_to_join_the_chain_leaves_aiobotocore_working_and_says_so(
    fake_env, monkeypatch, caplog
):
    install()

    def broken(*args):
        raise AttributeError("no such aiobotocore internal")

    monkeypatch.setattr(_aio_impl, "join_chain", broken)
    with caplog.at_level(logging.WARNING, logger="irsa_session"):
        found = run(chain_credentials())
    assert found.method == "assume-role-with-web-identity"  # aiobotocore's own, intact
    assert "aio_session()" in caplog.text and "no such aiobotocore internal" in caplog.text


# -- aio_session(): the explicit way -------------------------------------------


def test_aio_session_signature_matches_assumed_role_session():
    # The same parameters (names, kinds, defaults, types); each returns its own kind of session.
    assert inspect.signature(irsa_session.aio_session).parameters == inspect.signature(
        irsa_session.assumed_role_session
    ).parameters
    assert irsa_session.aio_session.__doc__.strip()


def test_aio_session_for_s3fs_and_pandas_shares_the_sts_call_with_boto3(proxy, bucket, fake_env):
    session = irsa_session.aio_session()
    assert isinstance(session, aiobotocore_session.AioSession)
    assert irsa_session.aio_session() is session
    options = {"session": session, "endpoint_url": proxy.url}

    fs = s3fs.S3FileSystem(**options)
    assert fs.ls("%s/raw" % bucket) == ["%s/raw/%s" % (bucket, n) for n in ("blob.bin", "readings.csv", "readings.parquet")]
    url = "s3://%s/raw/" % bucket
    assert list(pd.read_csv(url + "readings.csv", storage_options=options).reading) == [3, 19, 27]
    assert list(pd.read_parquet(url + "readings.parquet", storage_options=options).city) == [
        "oslo", "lima", "cairo",
    ]
    fs.pipe("%s/out/written.bin" % bucket, b"written by s3fs")
    s3 = irsa_session.session.client("s3", endpoint_url=proxy.url)
    assert s3.get_object(Bucket=bucket, Key="out/written.bin")["Body"].read() == b"written by s3fs"

    assert len(assume_calls(fake_env)) == 1
    assert len(proxy.keys()) == 1
    assert_all_signed_by_issued(proxy, fake_env)
    assert run(session.get_credentials())._irsa is irsa_session.session.get_credentials()


def test_a_key_sts_did_not_issue_is_refused(proxy, bucket, fake_env):
    # The proxy can fail: static keys are rejected, and that fails the read.
    fs = s3fs.S3FileSystem(key="AKIANOTISSUED0000000", secret="wrong", endpoint_url=proxy.url)
    with pytest.raises(PermissionError):
        fs.cat("%s/raw/blob.bin" % bucket)
    assert set(s.verdict for s in proxy.seen) == {"InvalidAccessKeyId"}


def test_aio_session_fallback_and_no_fallback(monkeypatch, caplog):
    monkeypatch.setenv("AWS_REGION", "eu-west-1")
    with caplog.at_level(logging.INFO, logger="irsa_session"):
        session = irsa_session.aio_session()
    assert isinstance(session, aiobotocore_session.AioSession)
    assert session.get_config_variable("region") == "eu-west-1"
    assert "AWS_ROLE_ARN and AWS_WEB_IDENTITY_TOKEN_FILE are unset" in caplog.text
    assert "fallback=True" in repr(session)
    assert isinstance(pickle.loads(pickle.dumps(session)), aiobotocore_session.AioSession)
    with pytest.raises(ConfigError) as caught:
        irsa_session.aio_session(fallback=False)
    assert "AWS_ROLE_ARN" in str(caught.value)


# -- refresh: off the event loop, shared, rotating mid-read ----------------------


def test_refresh_runs_in_a_thread_and_never_blocks_the_event_loop(fake_env):
    fake_env.set_mode(delay=1.0)
    credentials = run(irsa_session.aio_session().get_credentials())
    gaps = []

    async def ticker(stop):
        last = time.monotonic()
        while not stop.is_set():
            await asyncio.sleep(0.02)
            now = time.monotonic()
            calls = fake_env.calls
            if calls and calls[-1]["answered"] is None:  # STS holds the refresh's call
                gaps.append(now - last)
            last = now

    async def main():
        stop = asyncio.Event()
        ticks = asyncio.ensure_future(ticker(stop))
        started = time.monotonic()
        frozen = await credentials.get_frozen_credentials()
        took = time.monotonic() - started
        stop.set()
        await ticks
        return frozen, took

    frozen, took = run(main())
    assert took >= 1.0
    # While STS held the call (1 s), the loop went on ticking: a refresh on the
    # loop's own thread would have let no tick through until the answer came.
    assert len(gaps) >= 5, "the event loop ran %d times while STS held the refresh" % len(gaps)
    assert frozen.access_key == fake_env.issued[-1]["access_key"]
    assert len(assume_calls(fake_env)) == 1


def test_coroutines_and_boto3_threads_share_one_sts_call(fake_env):
    fake_env.set_mode(delay=0.5)
    aio = run(irsa_session.aio_session().get_credentials())
    sync = irsa_session.session.get_credentials()
    keys = []

    def boto3_side():
        keys.append(sync.get_frozen_credentials().access_key)

    async def main():
        return await asyncio.gather(*[aio.get_frozen_credentials() for _ in range(20)])

    threads = [threading.Thread(target=boto3_side) for _ in range(4)]
    for thread in threads:
        thread.start()
    keys += [frozen.access_key for frozen in run(main())]
    for thread in threads:
        thread.join(10)
    assert len(keys) == 24 and len(set(keys)) == 1
    assert len(assume_calls(fake_env)) == 1


def test_short_lived_credentials_rotate_mid_read_and_the_read_goes_on(proxy, bucket, fake_env):
    # 6-second credentials: refresh starts 1.5 s before expiry; the proxy
    # refuses a key from its expiry on, so a stale key would fail the read.
    fake_env.set_mode(duration=6, honor_duration=False)
    fs = s3fs.S3FileSystem(session=irsa_session.aio_session(), endpoint_url=proxy.url)
    s3 = irsa_session.session.client("s3", endpoint_url=proxy.url)
    path = "%s/raw/blob.bin" % bucket
    chunks = []
    # Read for a fixed time, not a fixed amount, so that a fast machine also
    # crosses two refreshes (each falls due about 4.5 s after the key before it).
    deadline = time.monotonic() + 13
    with fs.open(path, "rb", block_size=2048, cache_type="none") as handle:
        while time.monotonic() < deadline:
            chunk = handle.read(2048)
            if not chunk:  # the whole object arrived: read it again from the start
                assert b"".join(chunks) == BLOB
                chunks = []
                handle.seek(0)
                continue
            chunks.append(chunk)
            s3.head_object(Bucket=bucket, Key="raw/blob.bin")  # boto3 beside it
            time.sleep(0.4)
        chunks.append(handle.read())
    s3.head_object(Bucket=bucket, Key="raw/blob.bin")  # boto3 after aiobotocore's last read
    assert b"".join(chunks) == BLOB
    assert_all_signed_by_issued(proxy, fake_env)
    keys = proxy.keys()
    assert len(keys) >= 3, keys
    assert len(assume_calls(fake_env)) == len(keys)  # one call per refresh, for both clients
    by_agent = {}
    for seen in proxy.seen:
        by_agent.setdefault(seen.user_agent.split("/")[0], []).append(seen.access_key)
    # Both clients shared every key, except that boto3's request after the read
    # may fall due for a refresh that aiobotocore, done by then, never needed.
    aio_keys, boto3_keys = by_agent["aiobotocore"], by_agent["Boto3"]
    assert set(aio_keys) <= set(boto3_keys) == set(keys)
    late = set(boto3_keys) - set(aio_keys)
    assert late <= {fake_env.issued[-1]["access_key"]} and late <= {boto3_keys[-1]}, late


def test_failed_mandatory_refresh_raises_refresh_error_without_secrets(fake_env, irsa_env):
    fake_env.set_mode(always_fail="AccessDenied")
    credentials = run(irsa_session.aio_session().get_credentials())
    with pytest.raises(RefreshError) as caught:
        run(credentials.get_frozen_credentials())
    assert ROLE_ARN in str(caught.value)
    assert open(irsa_env).read().strip() not in str(caught.value)
    assert len(assume_calls(fake_env)) == 1  # AccessDenied is not retried


# -- fork, pickle, secrets -----------------------------------------------------


def test_forked_child_gets_working_credentials_even_mid_refresh(proxy, bucket, fake_env):
    fake_env.set_mode(delay=1.5)
    session = irsa_session.aio_session()
    credentials = run(session.get_credentials())
    refreshing = in_flight(fake_env, credentials._irsa.get_frozen_credentials)
    read_end, write_end = os.pipe()
    pid = os.fork()
    if pid == 0:  # the child: aiobotocore on the inherited session
        status = 1
        try:
            os.close(read_end)

            async def child():
                async with session.create_client("s3", endpoint_url=proxy.url) as s3:
                    got = await s3.get_object(Bucket=bucket, Key="raw/readings.csv")
                    body = await got["Body"].read()
                frozen = await (await session.get_credentials()).get_frozen_credentials()
                return frozen.access_key, body

            key, body = asyncio.run(asyncio.wait_for(child(), 20))
            os.write(write_end, ("%s %d" % (key, body == CSV)).encode())
            status = 0
        finally:
            os._exit(status)
    os.close(write_end)
    assert refreshing.call["answered"] is None  # so the fork came mid-refresh
    _, status = os.waitpid(pid, 0)
    answer = os.read(read_end, 200).decode().split()
    os.close(read_end)
    refreshing.join(10)
    assert status == 0 and answer[1] == "1"
    parent_key = credentials._irsa.get_frozen_credentials().access_key
    assert answer[0] != parent_key  # the child made its own credentials
    assert set(proxy.keys()) == {answer[0]}
    assert_all_signed_by_issued(proxy, fake_env)


def test_pickled_s3fs_filesystem_carries_settings_only_and_works_elsewhere(
    proxy, bucket, fake_env, irsa_env
):
    fs = s3fs.S3FileSystem(session=irsa_session.aio_session(), endpoint_url=proxy.url)
    assert fs.cat("%s/raw/readings.csv" % bucket) == CSV
    data = pickle.dumps(fs)
    assert_clean([data], secrets_of(fake_env, token_files=[irsa_env]))
    credentials = run(fs.session.get_credentials())
    assert pickle.loads(pickle.dumps(credentials)) is credentials
    assert pickle.loads(pickle.dumps(fs.session)) is fs.session
    out = run_python(
        "import pickle, sys\n"
        "fs = pickle.loads(sys.stdin.buffer.read())\n"
        "sys.stdout.buffer.write(fs.cat(%r))\n" % ("%s/raw/readings.csv" % bucket),
        stdin=data,
    )
    assert out == CSV
    assert len(assume_calls(fake_env)) == 2  # the receiving process made its own
    assert len(proxy.keys()) == 2
    assert_all_signed_by_issued(proxy, fake_env)


def test_no_secret_in_repr_str_or_any_debug_record(proxy, bucket, fake_env, irsa_env, caplog):
    with caplog.at_level(logging.DEBUG):
        session = irsa_session.aio_session()
        fs = s3fs.S3FileSystem(session=session, endpoint_url=proxy.url)
        assert fs.cat("%s/raw/readings.csv" % bucket) == CSV
        fs.pipe("%s/out/x.bin" % bucket, b"x" * 10)
    credentials = run(session.get_credentials())
    frozen = run(credentials.get_frozen_credentials())
    texts = [repr(session), str(session), repr(credentials), str(credentials), repr(frozen)]
    texts += [record.getMessage() for record in caplog.records]
    texts += [record.exc_text or "" for record in caplog.records]
    assert any("aiobotocore" in record.name or "botocore" in record.name for record in caplog.records)
    assert_clean(texts, secrets_of(fake_env, token_files=[irsa_env]))
    assert ROLE_ARN in repr(session) and ROLE_ARN in repr(credentials)
    assert frozen.access_key in repr(frozen)


# -- one resolver: Pod Identity and chained roles reach aiobotocore too -----------------


def test_aio_session_uses_pod_identity_in_a_pod_identity_pod(pod_identity_pod, bucket):
    proxy = pod_identity_pod.proxy
    session = irsa_session.aio_session()
    fs = s3fs.S3FileSystem(session=session, endpoint_url=proxy.url)
    assert fs.cat("%s/raw/readings.csv" % bucket) == CSV
    assert proxy.keys() == [pod_identity_pod.issued[0]["access_key"]]
    assert [s.verdict for s in proxy.seen] == ["ok"] * len(proxy.seen)
    boto3_key = irsa_session.session.get_credentials().get_frozen_credentials().access_key
    assert boto3_key == proxy.keys()[0] and pod_identity_pod.call_count == 1  # one fetch for both
    data = pickle.dumps(session)
    assert pickle.loads(data) is session


def test_after_install_with_a_chained_role_aio_session_is_that_role(fake_env, irsa_env, monkeypatch):
    """install(assume_role=T) then aio_session(): T's credentials, not the source role's."""
    from irsa_testing.chainsts import ChainSTS

    target = "arn:aws:iam::444455556666:role/cross/reader"
    with ChainSTS(trust={target: {"principals": [ROLE_ARN]}}) as sts:
        monkeypatch.setenv("AWS_ENDPOINT_URL_STS", sts.url)
        installed = irsa_session.install(assume_role=target)
        session = irsa_session.aio_session()
        credentials = run(session.get_credentials())
        frozen = run(credentials.get_frozen_credentials())
        assert frozen.access_key == installed.get_credentials().get_frozen_credentials().access_key
        assert sts.key(frozen.access_key)["role_arn"] == target
        assert [call["action"] for call in sts.calls] == ["AssumeRoleWithWebIdentity", "AssumeRole"]
        # A chained AioCredentials pickles as the chain's settings and comes back as itself.
        data = pickle.dumps(credentials)
        assert pickle.loads(data) is credentials
        assert_clean([data], secrets_of(sts, token_files=[irsa_env]))


# -- a service's ExpiredToken: one refresh, one retry (issue 23) -------------------------


@pytest.mark.parametrize("how", ["aio_session", "install"])
def test_s3fs_sees_no_failure_when_the_service_refuses_credentials_early(moto_server, bucket, fake_env, how):
    """The proxy's clock runs 2.5 s ahead: it refuses 6-second credentials for the last
    2.5 s of their life, while the library takes them for valid until 1.5 s before
    expiry.  s3fs asks HEAD first, whose 400 has no body to name ExpiredToken."""
    from irsa_testing.s3proxy import S3Proxy

    fake_env.set_mode(duration=6, honor_duration=False)
    with S3Proxy(moto_server.url, lambda: fake_env.issued, clock=lambda: time.time() + 2.5) as ahead:
        if how == "install":
            install()
            fs = s3fs.S3FileSystem(endpoint_url=ahead.url)
        else:
            fs = s3fs.S3FileSystem(session=irsa_session.aio_session(), endpoint_url=ahead.url)
        deadline = time.monotonic() + 14
        while time.monotonic() < deadline:
            assert fs.cat("%s/raw/readings.csv" % bucket) == CSV  # never fails
            time.sleep(0.05)
        verdicts = [s.verdict for s in ahead.seen]
    assert "ExpiredToken" in verdicts, "the service never refused a key early: the test proves nothing"
    assert set(verdicts) <= {"ok", "ExpiredToken"}
    assert fake_env.call_count == len(fake_env.issued) <= len(set(s.access_key for s in ahead.seen)) + 1
