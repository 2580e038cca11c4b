"""EKS Pod Identity: settings, the agent fetch (token read each time, retries, errors),
the session, install(), the node cache, forks, pickles and secrets, on every row."""

import logging
import os
import pickle
import socket
import subprocess
import sys
import threading
import time
import uuid

import boto3
import botocore.session
import pytest

import irsa_session
from irsa_session import ConfigError, RefreshError, TokenFileError, config, install, sts
from irsa_session.pod_identity import Agent
from irsa_session.sessions import pod_identity_session
from irsa_testing import SUBJECT
from irsa_testing.agent import FakeAgent
from irsa_testing.leaks import assert_clean
from irsa_testing.s3proxy import S3Proxy
from irsa_testing.tokens import make_token

FAST = sts.RetryPolicy(attempts=4, base=0.01, cap=0.02)


@pytest.fixture
def pod_token(tmp_path):
    path = tmp_path / "eks-pod-identity-token"
    path.write_text(make_token(sub=SUBJECT, aud=["pods.eks.amazonaws.com"]) + "\n")
    return str(path)


@pytest.fixture
def agent(pod_token):
    with FakeAgent(expect_token=lambda: open(pod_token).read().strip()) as server:
        yield server


@pytest.fixture
def pod_env(agent, pod_token, monkeypatch):
    """The variables EKS sets for a pod with a Pod Identity association (agent on loopback)."""
    monkeypatch.setenv("AWS_CONTAINER_CREDENTIALS_FULL_URI", agent.url)
    monkeypatch.setenv("AWS_CONTAINER_AUTHORIZATION_TOKEN_FILE", pod_token)
    monkeypatch.setenv("AWS_REGION", "us-west-2")
    return agent


def child_env():
    """This environment, with the irsa_session this process imported first on the path."""
    home = os.path.dirname(os.path.dirname(os.path.abspath(irsa_session.__file__)))
    if os.path.basename(home) in ("site-packages", "dist-packages"):
        return dict(os.environ)  # installed: a child of this interpreter finds it anyway
    paths = [home] + [p for p in os.environ.get("PYTHONPATH", "").split(os.pathsep) if p]
    return dict(os.environ, PYTHONPATH=os.pathsep.join(paths))


def fetcher(**kwargs):
    return Agent(config.resolve_pod_identity(), retry=FAST, **kwargs)


def frozen(session):
    return session.get_credentials().get_frozen_credentials()


# -- settings -----------------------------------------------------------------


@pytest.mark.parametrize(
    "url",
    [
        "http://169.254.170.23/v1/credentials",
        "http://169.254.170.2/v2/credentials/abc",
        "http://[fd00:ec2::23]/v1/credentials",
        "http://127.0.0.1:8080/v1/credentials",
        "http://localhost/creds",
        "https://creds.example.com/v1",
    ],
)
def test_the_hosts_botocore_allows_are_allowed(url):
    settings = config.resolve_pod_identity(environ={"AWS_CONTAINER_CREDENTIALS_FULL_URI": url})
    assert settings.full_uri == url


@pytest.mark.parametrize(
    "url, says",
    [
        ("http://169.254.169.254/latest/meta-data/", "plain http to '169.254.169.254'"),
        ("http://agent.example.com/v1/credentials", "plain http to 'agent.example.com'"),
        ("https://169.254.170.23@evil.example/v1", "user info"),
        ("ftp://169.254.170.23/v1", "malformed"),
    ],
)
def test_other_hosts_are_a_config_error_naming_the_variable(url, says):
    with pytest.raises(ConfigError) as caught:
        config.resolve_pod_identity(environ={"AWS_CONTAINER_CREDENTIALS_FULL_URI": url})
    message = str(caught.value)
    assert says in message and "AWS_CONTAINER_CREDENTIALS_FULL_URI" in message


def test_relative_uri_goes_to_the_ecs_address():
    settings = config.resolve_pod_identity(environ={"AWS_CONTAINER_CREDENTIALS_RELATIVE_URI": "/v2/credentials/x"})
    assert settings.full_uri == "http://169.254.170.2/v2/credentials/x"
    assert config.resolve_pod_identity(environ={}) is None


def test_settings_hold_no_literal_token_and_reject_a_relative_token_path():
    env = {"AWS_CONTAINER_CREDENTIALS_FULL_URI": "http://169.254.170.23/v1/credentials",
           "AWS_CONTAINER_AUTHORIZATION_TOKEN": "literal-secret-token-value"}
    settings = config.resolve_pod_identity(environ=env)
    assert settings.literal_token is True and "literal-secret-token-value" not in repr(settings)
    assert "literal-secret-token-value" not in pickle.dumps(settings).decode("latin-1")
    env["AWS_CONTAINER_AUTHORIZATION_TOKEN_FILE"] = "relative/token"
    with pytest.raises(ConfigError) as caught:
        config.resolve_pod_identity(environ=env)
    assert "AWS_CONTAINER_AUTHORIZATION_TOKEN_FILE" in str(caught.value)
    env.pop("AWS_CONTAINER_AUTHORIZATION_TOKEN_FILE")
    env["AWS_CONTAINER_AUTHORIZATION_TOKEN"] = "abc\r\nX-Injected: 1"
    with pytest.raises(ConfigError) as caught:
        config.resolve_pod_identity(environ=env)
    assert "line break" in str(caught.value) and "X-Injected" not in str(caught.value)


# -- the fetch ------------------------------------------------------------------


def test_fetch_sends_the_token_and_returns_the_agents_credentials(pod_env, pod_token):
    issued = fetcher()()
    (call,) = pod_env.calls
    assert call["token"] == open(pod_token).read().strip() and call["path"] == "/v1/credentials"
    assert issued.access_key == pod_env.issued[-1]["access_key"]
    assert issued.secret_key == pod_env.issued[-1]["secret_key"]
    assert issued.account_id == "111122223333"
    assert issued.expiry == pod_env.issued[-1]["expiration"]


def test_the_token_file_is_read_at_every_fetch(pod_env, pod_token):
    fetch = fetcher()
    fetch()
    rotated = make_token(sub=SUBJECT, jti="rotated")
    with open(pod_token, "w") as handle:
        handle.write(rotated)  # the kubelet rotated it; the agent now wants the new one
    fetch()
    assert [call["token"] for call in pod_env.calls][1] == rotated
    assert [call["answered"] for call in pod_env.calls] == [200, 200]


def test_a_literal_token_is_read_from_the_environment_at_each_fetch(agent, monkeypatch):
    monkeypatch.setenv("AWS_CONTAINER_CREDENTIALS_FULL_URI", agent.url)
    monkeypatch.setenv("AWS_CONTAINER_AUTHORIZATION_TOKEN", "first-literal-token-0001")
    agent.expect_token = None
    fetch = fetcher()
    fetch()
    monkeypatch.setenv("AWS_CONTAINER_AUTHORIZATION_TOKEN", "second-literal-token-0002")
    fetch()
    assert [call["token"] for call in agent.calls] == ["first-literal-token-0001", "second-literal-token-0002"]


@pytest.mark.parametrize("fault", ["500", "503", "429", "drop"])
def test_transient_faults_are_retried_with_the_token_read_again(pod_env, fault):
    if fault == "drop":
        pod_env.drop_next(2)
    else:
        pod_env.fail_next(2, status=int(fault))
    issued = fetcher()()
    assert pod_env.call_count == 3 and issued.access_key == pod_env.issued[-1]["access_key"]


def test_each_retry_sends_the_token_the_kubelet_wrote_in_between(pod_env, pod_token):
    rotated = make_token(sub=SUBJECT, aud=["pods.eks.amazonaws.com"], jti="rotated")

    def rotate_while_waiting(seconds):
        with open(pod_token, "w") as handle:
            handle.write(rotated + "\n")

    first = open(pod_token).read().strip()
    pod_env.fail_next(1, status=503)
    fetcher(sleep=rotate_while_waiting)()
    assert [call["token"] for call in pod_env.calls] == [first, rotated]
    assert [call["answered"] for call in pod_env.calls] == [503, 200]


@pytest.mark.parametrize("status", [401, 403])
def test_refused_tokens_fail_at_once_with_the_status(pod_env, status):
    pod_env.fail_next(1, status=status, message="refused (test)")
    with pytest.raises(RefreshError) as caught:
        fetcher()()
    assert pod_env.call_count == 1 and caught.value.code == str(status)
    assert "HTTP %d" % status in str(caught.value) and "Pod Identity association" in str(caught.value)


def test_retries_are_bounded(pod_env):
    pod_env.fail_next(10, status=503)
    with pytest.raises(RefreshError) as caught:
        fetcher()()
    assert pod_env.call_count == FAST.attempts == caught.value.attempts
    assert "kept failing after 4 attempts" in str(caught.value) and "HTTP 503" in str(caught.value)


def test_403_fails_at_once_and_names_the_association_and_token(pod_env, pod_token):
    with open(pod_token, "w") as handle:
        handle.write(make_token(sub=SUBJECT, jti="not-the-one-the-agent-wants"))
    pod_env.expect_token = lambda: "another token"
    with pytest.raises(RefreshError) as caught:
        fetcher()()
    message = str(caught.value)
    assert pod_env.call_count == 1 and caught.value.code == "403"
    assert "Pod Identity association" in message and SUBJECT in message
    assert pod_token in message and "AWS_CONTAINER_AUTHORIZATION_TOKEN_FILE" in message
    assert open(pod_token).read().strip() not in message


def test_404_names_the_url_variable(agent, pod_token, monkeypatch):
    monkeypatch.setenv("AWS_CONTAINER_CREDENTIALS_FULL_URI", agent.url.replace("/v1/credentials", "/v1/credential"))
    monkeypatch.setenv("AWS_CONTAINER_AUTHORIZATION_TOKEN_FILE", pod_token)
    with pytest.raises(RefreshError) as caught:
        fetcher()()
    assert agent.call_count == 1
    assert "HTTP 404" in str(caught.value) and "AWS_CONTAINER_CREDENTIALS_FULL_URI" in str(caught.value)


@pytest.mark.parametrize("status", [301, 302, 303, 307, 308])
@pytest.mark.parametrize("variable", ["AWS_CONTAINER_CREDENTIALS_FULL_URI", "AWS_CONTAINER_CREDENTIALS_RELATIVE_URI"])
def test_a_redirect_is_refused_and_the_token_goes_nowhere_else(agent, pod_token, monkeypatch, status, variable):
    """As botocore's container fetcher: no redirect is followed, whatever it points to."""
    if variable == "AWS_CONTAINER_CREDENTIALS_RELATIVE_URI":  # the ECS address, here on loopback
        monkeypatch.setattr(config, "_RELATIVE_HOST", agent.base_url)
        monkeypatch.setenv(variable, "/v1/credentials")
    else:
        monkeypatch.setenv(variable, agent.url)
    monkeypatch.setenv("AWS_CONTAINER_AUTHORIZATION_TOKEN_FILE", pod_token)
    with FakeAgent() as elsewhere:
        location = elsewhere.url
        agent.redirect_next(location, n=10, status=status)
        with pytest.raises(RefreshError) as caught:
            frozen(pod_identity_session())
        assert elsewhere.calls == []  # the token went nowhere else
    assert agent.call_count == 1  # and a redirect is not retried
    message = str(caught.value)
    assert "HTTP %d, a redirect" % status in message and "not followed" in message
    assert variable in message
    assert location not in message


def test_malformed_json_is_refused_without_quoting_it(pod_env):
    pod_env.malformed_next(1)
    with pytest.raises(RefreshError) as caught:
        fetcher()()
    assert "something other than the JSON credentials" in str(caught.value)
    assert "ASIA" not in str(caught.value) and caught.value.__cause__ is None


def test_an_unreachable_agent_asks_about_the_add_on(pod_token, monkeypatch):
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    monkeypatch.setenv("AWS_CONTAINER_CREDENTIALS_FULL_URI", "http://127.0.0.1:%d/v1/credentials" % port)
    monkeypatch.setenv("AWS_CONTAINER_AUTHORIZATION_TOKEN_FILE", pod_token)
    with pytest.raises(RefreshError) as caught:
        fetcher()()
    message = str(caught.value)
    assert "could not reach the EKS Pod Identity agent" in message and "after 4 attempts" in message
    assert "Pod Identity Agent add-on" in message and "eks-pod-identity-agent" in message


@pytest.mark.parametrize("inside", ["\n", "\r\n", "\nX-Injected: 1\n", "\x00", "\t", "\x7f"])
def test_a_token_with_a_control_character_is_a_token_file_error(agent, tmp_path, monkeypatch, capture, inside):
    """The token is not sent, and no text of an HTTP library's error (which may quote it) is shown."""
    path = tmp_path / "eks-pod-identity-token"
    token = make_token(aud=["pods.eks.amazonaws.com"])
    head, tail = token[: len(token) // 2], token[len(token) // 2:]
    path.write_text(head + inside + tail)
    monkeypatch.setenv("AWS_CONTAINER_CREDENTIALS_FULL_URI", agent.url)
    monkeypatch.setenv("AWS_CONTAINER_AUTHORIZATION_TOKEN_FILE", str(path))
    with pytest.raises(TokenFileError) as caught:
        frozen(pod_identity_session())
    assert agent.calls == []
    message = str(caught.value)
    assert str(path) in message and "control character" in message
    assert_clean([message, repr(caught.value.args)] + capture.lines, [head, tail])


def test_an_http_library_error_about_the_request_is_not_quoted(pod_env, pod_token):
    """Whatever the opener raises about a request, the message names its kind, not its text."""
    secret = open(pod_token).read().strip()

    class Opener(object):
        def open(self, request, timeout=None):
            # As a library might: the value quoted in part, so no scrubber knows it.
            raise ValueError("Invalid header value %r..." % request.get_header("Authorization")[:60])

    with pytest.raises(RefreshError) as caught:
        fetcher(opener=Opener())()
    assert "ValueError" in str(caught.value)
    assert_clean([str(caught.value), repr(caught.value.args)], [secret])


def test_token_file_errors_name_the_pod_identity_variable(agent, tmp_path, monkeypatch):
    monkeypatch.setenv("AWS_CONTAINER_CREDENTIALS_FULL_URI", agent.url)
    monkeypatch.setenv("AWS_CONTAINER_AUTHORIZATION_TOKEN_FILE", str(tmp_path / "absent"))
    with pytest.raises(TokenFileError) as caught:
        fetcher()()
    assert "AWS_CONTAINER_AUTHORIZATION_TOKEN_FILE" in str(caught.value)
    assert "Pod Identity association" in str(caught.value) and agent.call_count == 0


@pytest.mark.skipif(not hasattr(os, "mkfifo"), reason="no named pipes here")
def test_a_fifo_token_file_is_refused_at_once_not_read(agent, tmp_path, monkeypatch):
    fifo = str(tmp_path / "token-fifo")
    os.mkfifo(fifo)  # no writer: opening it to read would block forever
    monkeypatch.setenv("AWS_CONTAINER_CREDENTIALS_FULL_URI", agent.url)
    monkeypatch.setenv("AWS_CONTAINER_AUTHORIZATION_TOKEN_FILE", fifo)
    started = time.monotonic()
    with pytest.raises(TokenFileError) as caught:
        fetcher()()
    assert time.monotonic() - started < 1.0
    assert caught.value.path == fifo and "FIFO" in str(caught.value) and agent.call_count == 0


def test_a_byte_order_mark_in_the_token_file_is_not_sent(tmp_path, monkeypatch):
    token = make_token(sub=SUBJECT, aud=["pods.eks.amazonaws.com"])
    path = tmp_path / "eks-pod-identity-token"
    path.write_bytes(b"\xef\xbb\xbf" + token.encode("ascii") + b"\n")  # as some editors save it
    with FakeAgent(expect_token=lambda: token) as agent:  # refuses anything else with 403
        monkeypatch.setenv("AWS_CONTAINER_CREDENTIALS_FULL_URI", agent.url)
        monkeypatch.setenv("AWS_CONTAINER_AUTHORIZATION_TOKEN_FILE", str(path))
        assert fetcher()().access_key == agent.issued[-1]["access_key"]
        assert [call["token"] for call in agent.calls] == [token]


# -- sessions ---------------------------------------------------------------------


def test_session_uses_pod_identity_when_irsa_is_unset_deferred(pod_env, caplog):
    caplog.set_level(logging.INFO, logger="irsa_session")
    session = irsa_session.session
    assert pod_env.call_count == 0  # nothing fetched on access
    assert "pod_identity=" in repr(session)
    assert frozen(session).access_key == pod_env.issued[-1]["access_key"]
    assert session is pod_identity_session() and pod_env.call_count == 1
    assert "using EKS Pod Identity" in caplog.text
    assert irsa_session.sessions.resolve_source() is session  # resolved again: not logged again
    assert caplog.text.count("using EKS Pod Identity") == 1


def test_irsa_wins_when_both_are_set_and_says_so(pod_env, fake_env, caplog):
    caplog.set_level(logging.INFO, logger="irsa_session")
    assert frozen(irsa_session.session).access_key == fake_env.issued[-1]["access_key"]
    assert pod_env.call_count == 0
    assert "both IRSA" in caplog.text and "using IRSA" in caplog.text
    irsa_session.sessions.resolve_source()  # resolved again: not logged again
    assert caplog.text.count("both IRSA") == 1


def test_pod_identity_session_falls_back_when_unset(caplog):
    caplog.set_level(logging.INFO, logger="irsa_session")
    session = pod_identity_session()
    assert "fallback=True" in repr(session) and "EKS Pod Identity is not configured" in caplog.text


def test_install_gives_unchanged_code_pod_identity_credentials(pod_env):
    installed = install()
    key = frozen(installed).access_key
    assert frozen(boto3.Session()).access_key == key
    assert botocore.session.get_session().get_credentials() is installed.get_credentials()
    assert boto3.client("s3")._request_signer._credentials is installed.get_credentials()
    assert pod_env.call_count == 1


def test_threads_share_one_fetch(pod_env):
    pod_env.delay = 0.3
    session = pod_identity_session()
    keys = []
    threads = [threading.Thread(target=lambda: keys.append(frozen(session).access_key)) for _ in range(16)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(30)
    assert pod_env.call_count == 1 and len(set(keys)) == 1 and len(keys) == 16


def test_short_lived_credentials_refresh_with_one_fetch_each(pod_env, clock):
    from irsa_session.credentials import Credentials

    pod_env.duration = 900
    creds = Credentials(fetcher(), clock=clock, settings=config.resolve_pod_identity())
    first = creds.get_frozen_credentials().access_key
    clock.tick(900 - 900 / 4 + 1)  # into the advisory window (a quarter of the life)
    second = creds.get_frozen_credentials().access_key
    assert first != second and pod_env.call_count == 2


def test_pickles_as_settings_and_rebuilds_in_another_process(pod_env, tmp_path):
    session = pod_identity_session()
    key = frozen(session).access_key
    blob = pickle.dumps(session)
    text = blob.decode("latin-1")
    for issued in pod_env.issued:
        assert issued["secret_key"] not in text and issued["session_token"] not in text
    assert open(os.environ["AWS_CONTAINER_AUTHORIZATION_TOKEN_FILE"]).read().strip() not in text
    (tmp_path / "session.pickle").write_bytes(blob)
    code = (
        "import pickle, sys\n"
        "s = pickle.load(open(sys.argv[1], 'rb'))\n"
        "print(s.get_credentials().get_frozen_credentials().access_key)\n"
    )
    out = subprocess.run(
        [sys.executable, "-c", code, str(tmp_path / "session.pickle")],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, universal_newlines=True, timeout=60,
        cwd=str(tmp_path), env=child_env(),
    )
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == pod_env.issued[-1]["access_key"] != key


@pytest.mark.skipif(not hasattr(os, "fork"), reason="needs os.fork")
def test_a_forked_child_fetches_its_own(pod_env):
    from irsa_testing.processes import in_child

    session = pod_identity_session()
    frozen(session)
    said = in_child(lambda: frozen(session).access_key)
    assert said == pod_env.issued[0]["access_key"]  # the parent's are still valid


@pytest.mark.skipif(not hasattr(os, "fork"), reason="needs os.fork")
def test_processes_sharing_a_node_cache_fetch_once(pod_env, tmp_path):
    from irsa_session import cache
    from irsa_testing.processes import in_child

    settings = config.resolve_pod_identity(cache_dir=str(tmp_path / "cache"))

    def fetch():  # in a forked child: a process of its own, sharing only the directory
        return cache.NodeCache(Agent(settings, retry=FAST), settings.cache_dir)().access_key

    first, second = in_child(fetch), in_child(fetch)
    assert pod_env.call_count == 1
    assert first == second == pod_env.issued[0]["access_key"]
    with open(os.environ["AWS_CONTAINER_AUTHORIZATION_TOKEN_FILE"], "w") as handle:
        handle.write(make_token(sub=SUBJECT, jti="forged-same-claims"))
    pod_env.expect_token = None
    cache.NodeCache(Agent(settings, retry=FAST), settings.cache_dir)()
    assert pod_env.call_count == 2  # another token: the entry is not served


def test_signed_s3_requests_use_the_agents_keys_and_nothing_leaks(pod_env, moto_server, caplog):
    caplog.set_level(logging.DEBUG)
    with S3Proxy(moto_server.url, lambda: pod_env.issued) as proxy:
        s3 = pod_identity_session().client("s3", endpoint_url=proxy.url, region_name="us-east-1")
        bucket = "pod-%s" % uuid.uuid4().hex[:12]
        s3.create_bucket(Bucket=bucket)
        s3.put_object(Bucket=bucket, Key="k", Body=b"from pod identity")
        assert s3.get_object(Bucket=bucket, Key="k")["Body"].read() == b"from pod identity"
        assert proxy.keys() == [pod_env.issued[-1]["access_key"]]
        assert proxy.keys("InvalidAccessKeyId") == []
    secrets = [pod_env.issued[-1]["secret_key"], pod_env.issued[-1]["session_token"],
               open(os.environ["AWS_CONTAINER_AUTHORIZATION_TOKEN_FILE"]).read().strip()]
    session = pod_identity_session()
    texts = [caplog.text, repr(session), repr(session.get_credentials()), repr(frozen(session))]
    for text in texts:
        for secret in secrets:
            assert secret not in text


def test_the_example_runs_end_to_end(moto_server, tmp_path):
    """examples/pod_identity.py: unchanged boto3 reads S3 with the agent's keys; a rotation."""
    script = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "examples", "pod_identity.py")
    out = subprocess.run(
        [sys.executable, script], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
        universal_newlines=True, timeout=120, cwd=str(tmp_path), env=child_env(),
    )
    assert out.returncode == 0, out.stderr
    assert "unchanged boto3.client('s3') read 'hello from Pod Identity\\n'" in out.stdout
    assert "agent calls:    2 (the second with the rotated token: True)" in out.stdout
    assert "4 signed by keys the agent issued, 0 refused" in out.stdout
    first, second = [word.rstrip(",") for word in out.stdout.split() if word.startswith("ASIA")]
    assert first != second


def test_pod_identity_session_is_exported_with_the_signature_of_api_md():
    import inspect

    assert irsa_session.pod_identity_session is pod_identity_session
    assert "pod_identity_session" in irsa_session.__all__
    params = [(p.name, p.kind, p.default) for p in inspect.signature(pod_identity_session).parameters.values()]
    kw = inspect.Parameter.KEYWORD_ONLY
    assert params == [("full_uri", kw, None), ("token_file", kw, None), ("region_name", kw, None), ("cache_dir", kw, None)]


def test_a_hung_agent_gives_up_within_the_deadline(pod_env):
    pod_env.delay = 5.0  # accepts, then answers too late
    agent = Agent(config.resolve_pod_identity(), retry=sts.RetryPolicy(attempts=6, base=0.2, cap=0.4),
                  timeout=0.5, deadline=2.5)
    started = time.monotonic()
    with pytest.raises(RefreshError) as caught:
        agent()
    took = time.monotonic() - started
    assert took <= 3.0, took
    assert 2 <= pod_env.call_count < 6
    assert "could not reach the EKS Pod Identity agent" in str(caught.value)
    assert "timed out" in str(caught.value) and "IRSA_SESSION_DEADLINE" in str(caught.value)


def test_logs_say_pod_identity_not_irsa(pod_env, caplog):
    caplog.set_level(logging.INFO, logger="irsa_session")
    frozen(pod_identity_session())
    lines = [record.getMessage() for record in caplog.records if record.name.startswith("irsa_session")]
    assert any(line.startswith("EKS Pod Identity credentials refreshed") for line in lines), lines
    assert not any("IRSA" in line for line in lines), lines
