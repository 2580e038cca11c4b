"""Sessions: reuse, fallback, client cache, threads, pickling, forks, install()."""

import logging
import os
import pickle
import select
import threading

import boto3
import boto3.session
import botocore.credentials
import botocore.session
import pytest
from botocore.config import Config

import irsa_session
from irsa_session import ConfigError, assumed_role_session, install, refreshable_credentials
from irsa_session.credentials import Credentials
from irsa_testing import ROLE_ARN
from irsa_testing.processes import lines_of



def frozen(session):
    return session.get_credentials().get_frozen_credentials()


def test_same_settings_share_session_and_credentials(fake_env):
    first = assumed_role_session()
    assert isinstance(first, boto3.session.Session)
    assert first.region_name == "us-west-2"
    for _ in range(100):
        assert assumed_role_session() is first
    assert assumed_role_session(role_arn=ROLE_ARN) is first
    assert irsa_session.session is first
    assert refreshable_credentials() is first.get_credentials()
    assert isinstance(first.get_credentials(), Credentials)
    assert fake_env.call_count == 0  # nothing fetched yet
    frozen(first)
    frozen(assumed_role_session())
    assert fake_env.call_count == 1
    other = assumed_role_session(session_name="another")
    assert other is not first
    frozen(other)
    assert fake_env.call_count == 2


def test_fallback_uses_the_default_chain_and_logs_once(monkeypatch, caplog):
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "AKIAFALLBACKEXAMPLE1")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "fallback-secret-key-example-000000000000")
    with caplog.at_level(logging.INFO, logger="irsa_session"):
        session = assumed_role_session()
        assumed_role_session()
    assert isinstance(session, boto3.session.Session)
    assert frozen(session).access_key == "AKIAFALLBACKEXAMPLE1"
    records = [r for r in caplog.records if r.name == "irsa_session"]
    assert len(records) == 1
    assert "AWS_ROLE_ARN and AWS_WEB_IDENTITY_TOKEN_FILE are unset" in records[0].getMessage()
    assert records[0].levelno == logging.INFO


def test_half_configured_fallback_warns(monkeypatch, caplog):
    monkeypatch.setenv("AWS_ROLE_ARN", ROLE_ARN)
    with caplog.at_level(logging.INFO, logger="irsa_session"):
        assumed_role_session()
    records = [r for r in caplog.records if r.name == "irsa_session"]
    assert records[0].levelno == logging.WARNING
    assert "AWS_WEB_IDENTITY_TOKEN_FILE is unset" in records[0].getMessage()


def test_no_fallback_raises_naming_the_variables(monkeypatch):
    with pytest.raises(ConfigError) as caught:
        assumed_role_session(fallback=False)
    assert caught.value.missing == ("AWS_ROLE_ARN", "AWS_WEB_IDENTITY_TOKEN_FILE")
    assert "AWS_ROLE_ARN and AWS_WEB_IDENTITY_TOKEN_FILE" in str(caught.value)
    monkeypatch.setenv("AWS_ROLE_ARN", ROLE_ARN)
    with pytest.raises(ConfigError) as caught:
        refreshable_credentials()
    assert caught.value.missing == ("AWS_WEB_IDENTITY_TOKEN_FILE",)


def test_invalid_settings_raise_even_with_fallback(monkeypatch, token_file):
    with pytest.raises(ConfigError):
        assumed_role_session(role_arn="arn:aws:s3:::bucket", fallback=True)
    with pytest.raises(ConfigError):
        assumed_role_session(duration_seconds=60)
    monkeypatch.setenv("AWS_ROLE_ARN", "not-an-arn")
    with pytest.raises(ConfigError) as caught:
        assumed_role_session(token_file=token_file)
    assert "AWS_ROLE_ARN" in str(caught.value)


def test_clients_are_cached_per_identical_arguments(fake_env):
    session = assumed_role_session()
    s3 = session.client("s3")
    assert session.client("s3") is s3
    assert session.client("s3", region_name="eu-west-1") is not s3
    tuned = session.client("s3", config=Config(retries={"max_attempts": 2}))
    assert session.client("s3", config=Config(retries={"max_attempts": 2})) is tuned
    assert session.client("s3", config=Config(retries={"max_attempts": 3})) is not tuned
    assert fake_env.call_count == 0


def test_clients_and_resources_from_many_threads(fake_env):
    session = assumed_role_session()
    got, errors = [], []
    barrier = threading.Barrier(16)

    def work(number):
        barrier.wait()
        try:
            got.append(session.client("sqs" if number % 2 else "s3"))
            got.append(session.resource("s3"))
        except Exception as err:  # collected for the assertion
            errors.append(err)

    threads = [threading.Thread(target=work, args=(n,)) for n in range(16)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(60)
    assert errors == []
    clients = [item for item in got if hasattr(item, "meta") and hasattr(item.meta, "service_model")]
    assert len(set(id(client) for client in clients)) == 2
    assert len(got) == 32


def test_repr_shows_settings_not_secrets(fake_env):
    session = assumed_role_session()
    creds = frozen(session)
    text = repr(session) + str(session) + repr(session.get_credentials())
    assert ROLE_ARN in repr(session)
    for secret in (creds.secret_key, creds.token, fake_env.calls[0]["token"]):
        assert secret not in text


def test_pickle_carries_settings_only(fake_env):
    session = assumed_role_session()
    creds = frozen(session)
    data = pickle.dumps(session)
    for secret in (creds.secret_key, creds.token, creds.access_key, fake_env.calls[0]["token"]):
        assert secret.encode() not in data
    assert ROLE_ARN.encode() in data
    assert pickle.loads(data) is session
    data = pickle.dumps(session.get_credentials())
    assert creds.secret_key.encode() not in data
    assert pickle.loads(data) is session.get_credentials()


def test_unpickled_in_another_process_gets_its_own_credentials(fake_env, tmp_path):
    session = assumed_role_session(session_name="shipped")
    parent_key = frozen(session).access_key
    (tmp_path / "session.pickle").write_bytes(pickle.dumps(session))
    lines = lines_of(
        "import pickle, sys\n"
        "s = pickle.load(open(%r, 'rb'))\n"
        "print(type(s).__mro__[1].__module__, repr(s))\n"
        "print(s.get_credentials().get_frozen_credentials().access_key)\n"
        % str(tmp_path / "session.pickle"),
        env={"AWS_ROLE_ARN": "", "AWS_WEB_IDENTITY_TOKEN_FILE": ""},
    )
    assert lines[0].startswith("boto3.session IrsaSession(role_arn=%r, session_name='shipped'" % ROLE_ARN)
    assert lines[1] != parent_key
    assert lines[1] == fake_env.issued[1]["access_key"]
    assert fake_env.call_count == 2


def test_fallback_session_unpickles_as_the_receivers_default(fake_sts, token_file):
    session = assumed_role_session()  # no IRSA variables here: a fallback
    data = pickle.dumps(session)
    lines = lines_of(
        "import pickle\n"
        "s = pickle.loads(%r)\n"
        "import irsa_session\n"
        "print(s is irsa_session.session)\n"
        "print(s._irsa_settings.role_arn)\n" % data,
        env={
            "AWS_ROLE_ARN": ROLE_ARN,
            "AWS_WEB_IDENTITY_TOKEN_FILE": token_file,
            "AWS_ENDPOINT_URL_STS": fake_sts.url,
        },
    )
    assert lines == ["True", ROLE_ARN]


@pytest.mark.skipif(not hasattr(os, "fork"), reason="needs os.fork")
def test_forked_child_has_credentials_and_its_own_clients(fake_env):
    session = assumed_role_session()
    parent_client = session.client("s3")
    key = frozen(session).access_key
    read_end, write_end = os.pipe()
    pid = os.fork()
    if pid == 0:
        try:
            fresh = session.client("s3") is not parent_client
            same_key = frozen(session).access_key == key
            os.write(write_end, ("%s %s" % (fresh, same_key)).encode())
        finally:
            os._exit(0)
    os.close(write_end)
    ready, _, _ = select.select([read_end], [], [], 20)
    if not ready:
        os.kill(pid, 9)
    os.waitpid(pid, 0)
    assert ready, "the forked child hung"
    assert os.read(read_end, 100).decode() == "True True"


def test_install_feeds_unchanged_code(fake_env):
    installed = install()
    assert install() is installed
    default = boto3.DEFAULT_SESSION
    assert default is not None and default is not installed
    key = frozen(installed).access_key
    assert boto3.client("s3")._request_signer._credentials is installed.get_credentials()
    assert frozen(boto3.Session()).access_key == key
    assert botocore.session.get_session().get_credentials() is installed.get_credentials()
    assert fake_env.call_count == 1
    explicit = boto3.Session(aws_access_key_id="AKIAEXPLICIT00000000", aws_secret_access_key="x" * 40)
    assert frozen(explicit).access_key == "AKIAEXPLICIT00000000"
    install()
    assert boto3.DEFAULT_SESSION is default  # a second install() keeps boto3's default session


def test_after_install_boto3_client_is_a_new_client_per_call(fake_env):
    installed = install()
    first, second = boto3.client("s3"), boto3.client("s3")
    assert first is not second
    seen = []
    first.meta.events.register("irsa-test-probe.s3", lambda **kw: seen.append(1))
    assert second.meta.events is not first.meta.events
    second.meta.events.emit("irsa-test-probe.s3")
    assert seen == []  # a handler on one client is not on the other
    first.meta.events.emit("irsa-test-probe.s3")
    assert seen == [1]
    assert installed.client("s3") is installed.client("s3")  # the cache stays on the library's


@pytest.mark.parametrize("how", ["profile_name", "region_name", "keys"])
def test_install_keeps_the_default_session_the_application_set_up(fake_env, monkeypatch, tmp_path, how):
    write_profiles(tmp_path, monkeypatch, credentials=PROFILE_KEYS, config="[profile team]\nregion = eu-central-1\n")
    chosen = {
        "profile_name": dict(profile_name="team"),
        "region_name": dict(region_name="eu-central-1"),
        "keys": dict(aws_access_key_id="AKIAPROFILEKEY000001", aws_secret_access_key="x" * 40,
                     region_name="eu-central-1"),
    }[how]
    boto3.setup_default_session(**chosen)
    mine = boto3.DEFAULT_SESSION
    installed = install()
    assert boto3.DEFAULT_SESSION is mine
    client = boto3.client("s3")
    assert client.meta.region_name == mine.region_name
    if how != "profile_name":  # (the pod's AWS_DEFAULT_REGION wins over a profile's region)
        assert client.meta.region_name == "eu-central-1" != installed.region_name
    expected = "AKIAPROFILEKEY000001" if how != "region_name" else frozen(installed).access_key
    assert client._request_signer._credentials.access_key == expected


def test_the_default_session_install_builds_has_the_library_s_region(fake_env, monkeypatch):
    monkeypatch.delenv("AWS_DEFAULT_REGION")  # a pod with only AWS_REGION
    boto3.client("s3", region_name="us-east-1")  # boto3 made its default session on its own
    installed = install()
    assert installed.region_name == "us-west-2"
    client = boto3.client("s3")
    assert client.meta.region_name == "us-west-2"
    assert client._request_signer._credentials is installed.get_credentials()


def write_profiles(tmp_path, monkeypatch, credentials="", config=""):
    (tmp_path / "credentials").write_text(credentials)
    (tmp_path / "config").write_text(config)
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", str(tmp_path / "credentials"))
    monkeypatch.setenv("AWS_CONFIG_FILE", str(tmp_path / "config"))


PROFILE_KEYS = (
    "[team]\naws_access_key_id = AKIAPROFILEKEY000001\n"
    "aws_secret_access_key = profile-secret-key-example-000000000000\n"
)


def test_install_leaves_environment_keys_first(fake_env, monkeypatch):
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "AKIAENVIRONMENTKEY01")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "env-secret-key-example-0000000000000000")
    install()
    assert frozen(boto3.Session()).access_key == "AKIAENVIRONMENTKEY01"
    assert boto3.client("s3")._request_signer._credentials.access_key == "AKIAENVIRONMENTKEY01"
    assert botocore.session.get_session().get_credentials().access_key == "AKIAENVIRONMENTKEY01"
    assert frozen(irsa_session.session).access_key != "AKIAENVIRONMENTKEY01"  # the library's own
    assert fake_env.call_count == 1


@pytest.mark.parametrize("how", ["AWS_PROFILE", "profile_name"])
def test_install_leaves_a_chosen_profile_first(fake_env, monkeypatch, tmp_path, how):
    write_profiles(tmp_path, monkeypatch, credentials=PROFILE_KEYS, config="[profile team]\n")
    if how == "AWS_PROFILE":
        monkeypatch.setenv("AWS_PROFILE", "team")
    install()
    chosen = boto3.Session(profile_name="team") if how == "profile_name" else boto3.Session()
    assert frozen(chosen).access_key == "AKIAPROFILEKEY000001"
    assert fake_env.call_count == 0


def test_install_answers_for_a_chosen_profile_without_credentials(fake_env, monkeypatch, tmp_path):
    write_profiles(tmp_path, monkeypatch, config="[profile regional]\nregion = eu-west-1\n")
    monkeypatch.setenv("AWS_PROFILE", "regional")
    installed = install()
    assert boto3.Session().get_credentials() is installed.get_credentials()


def test_install_goes_before_container_and_instance_metadata(fake_env, monkeypatch):
    monkeypatch.setenv("AWS_CONTAINER_CREDENTIALS_RELATIVE_URI", "/v2/credentials/abc")
    install()
    resolver = botocore.credentials.create_credential_resolver(botocore.session.get_session())
    methods = [getattr(each, "METHOD", None) for each in resolver.providers]
    ours = methods.index("irsa-session")
    assert ours < methods.index("container-role") < methods.index("iam-role")
    if "assume-role-with-web-identity" in methods:  # botocore's own web identity: ours first
        assert ours == methods.index("assume-role-with-web-identity") - 1
    assert methods[:ours] == [m for m in methods[:ours] if m in ("env", "assume-role")]
    assert boto3.Session().get_credentials().method == "irsa-session"


def test_install_without_irsa_leaves_the_chain_alone(monkeypatch):
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "AKIAFALLBACKEXAMPLE1")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "fallback-secret-key-example-000000000000")
    install()
    assert frozen(boto3.DEFAULT_SESSION).access_key == "AKIAFALLBACKEXAMPLE1"
    assert frozen(boto3.Session()).access_key == "AKIAFALLBACKEXAMPLE1"
    with pytest.raises(ConfigError):
        install(fallback=False)


def test_a_fallback_that_finds_no_credentials_warns_once_and_points_to_doctor(capture):
    """Issue 26: botocore's own NoCredentialsError names no cause."""
    session = irsa_session.assumed_role_session()  # no IRSA, no Pod Identity: boto3's chain
    for service in ("s3", "sts", "s3"):
        session.client(service, region_name="us-east-1", config=Config(retries={"max_attempts": 1}))
    warned = [line for line in capture.lines if "irsa-session doctor" in line]
    assert len(warned) == 1 and " WARNING " in warned[0], capture.lines
    assert "found none either" in warned[0]


def test_after_install_unchanged_code_that_finds_no_credentials_is_warned_too(capture):
    import boto3

    irsa_session.install()
    boto3.client("s3", region_name="us-east-1")
    boto3.client("sts", region_name="us-east-1")
    assert len([line for line in capture.lines if "irsa-session doctor" in line]) == 1


def test_no_warning_where_boto3_s_chain_finds_credentials(capture, monkeypatch):
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "AKIAEXAMPLEEXAMPLE00")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "s" * 40)
    irsa_session.assumed_role_session().client("s3", region_name="us-east-1")
    assert not [line for line in capture.lines if "irsa-session doctor" in line]
