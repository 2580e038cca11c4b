"""The STS exchange: unsigned calls, retries within the budget, errors that explain."""

import datetime
import socket
import time

import botocore.credentials
import pytest
from botocore.exceptions import ClientError, EndpointConnectionError

from irsa_session import ConfigError, RefreshError, TokenFileError, config, sts
from irsa_session.errors import IrsaError
from irsa_testing import ISSUER, ROLE_ARN, SUBJECT
from irsa_testing.tokens import make_token

FAST = sts.RetryPolicy(attempts=6, base=0.01, cap=0.08)


def client_error(code, status=400, message="something went wrong"):
    return ClientError(
        {"Error": {"Code": code, "Message": message}, "ResponseMetadata": {"HTTPStatusCode": status}},
        "AssumeRoleWithWebIdentity",
    )


def answer(expires_in=3600, key="ASIAEXAMPLEEXAMPLE01"):
    expiry = datetime.datetime.now(datetime.timezone.utc) + datetime.timedelta(seconds=expires_in)
    return {
        "Credentials": {
            "AccessKeyId": key,
            "SecretAccessKey": "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY",
            "SessionToken": "FwoGZXIvYXdzEXAMPLE+SESSION/TOKEN==",
            "Expiration": expiry,
        }
    }


class FakeClient(object):
    """Plays back answers (dicts) and errors (exceptions) in order."""

    def __init__(self, *answers):
        self.answers = list(answers)
        self.calls = []

    def assume_role_with_web_identity(self, **params):
        self.calls.append(params)
        item = self.answers.pop(0)
        if isinstance(item, BaseException):
            raise item
        return item


class Tokens(object):
    """A token reader that hands out a new token at each read."""

    def __init__(self, path):
        self.path = path
        self.handed = []

    def __call__(self, path):
        assert path == self.path
        self.handed.append(make_token(jti=str(len(self.handed))))
        return self.handed[-1]


def exchange(token_file, client, sleeps=None, read_token=None, **settings):
    resolved = config.resolve(
        role_arn=settings.pop("role_arn", ROLE_ARN),
        token_file=token_file,
        environ={},
        **settings
    )
    return sts.Exchange(
        resolved,
        client_factory=lambda _: client,
        read_token=read_token or sts.token.read,
        retry=FAST,
        sleep=(sleeps.append if sleeps is not None else lambda seconds: None),
        rand=lambda: 0.5,
    )


def test_success_returns_issued_credentials(token_file):
    client = FakeClient(answer(expires_in=1800))
    issued = exchange(token_file, client, session_name="pod-1", duration_seconds=1800)()
    assert issued.access_key == "ASIAEXAMPLEEXAMPLE01"
    assert issued.account_id == "111122223333"
    assert abs(issued.expiry - (datetime.datetime.now().timestamp() + 1800)) < 5
    sent = client.calls[0]
    assert sent["RoleArn"] == ROLE_ARN
    assert sent["RoleSessionName"] == "pod-1"
    assert sent["DurationSeconds"] == 1800
    assert sent["WebIdentityToken"] == open(token_file).read().strip()
    assert "wJalr" not in repr(issued)


@pytest.mark.parametrize(
    "fault",
    [
        client_error("Throttling"),
        client_error("IDPCommunicationError"),
        client_error("InvalidIdentityToken"),
        client_error("InternalFailure", status=500),
        client_error("ServiceUnavailable", status=503),
        client_error("SlowDown", status=429),
        EndpointConnectionError(endpoint_url="https://sts.us-west-2.amazonaws.com"),
        socket.timeout("timed out"),
    ],
    ids=lambda fault: type(fault).__name__ + ":" + str(getattr(fault, "response", {}).get("Error", {}).get("Code", "")),
)
def test_transient_faults_are_retried_with_a_fresh_token(token_file, fault):
    client = FakeClient(fault, fault, answer())
    tokens = Tokens(token_file)
    sleeps = []
    issued = exchange(token_file, client, sleeps=sleeps, read_token=tokens)()
    assert issued.access_key == "ASIAEXAMPLEEXAMPLE01"
    assert [call["WebIdentityToken"] for call in client.calls] == tokens.handed
    assert len(set(tokens.handed)) == 3
    assert sleeps == [FAST.delay(1, lambda: 0.5), FAST.delay(2, lambda: 0.5)]


def test_retry_budget_is_bounded_and_keeps_the_code(token_file):
    faults = [client_error("Throttling", message="Rate exceeded")] * 6
    client = FakeClient(*faults)
    sleeps = []
    with pytest.raises(RefreshError) as caught:
        exchange(token_file, client, sleeps=sleeps)()
    assert len(client.calls) == FAST.attempts
    assert len(sleeps) == FAST.attempts - 1
    assert sum(sleeps) <= FAST.budget
    err = caught.value
    assert err.code == "Throttling"
    assert err.attempts == 6
    assert err.__cause__ is faults[-1]
    assert "after 6 attempts" in str(err) and "Rate exceeded" in str(err)
    assert ROLE_ARN in str(err)


def test_default_budget_is_what_the_readme_states():
    assert sts.DEFAULT_RETRY.attempts == 6
    assert sts.DEFAULT_RETRY.budget == 15.5
    for attempt in range(1, 6):
        step = min(8.0, 0.5 * 2 ** (attempt - 1))
        assert sts.DEFAULT_RETRY.delay(attempt, lambda: 0.0) == step / 2
        assert sts.DEFAULT_RETRY.delay(attempt, lambda: 1.0) == step


def test_non_retryable_error_fails_at_once(token_file):
    fault = client_error("ValidationError", message="DurationSeconds exceeds the MaxSessionDuration")
    client = FakeClient(fault, answer())
    sleeps = []
    with pytest.raises(RefreshError) as caught:
        exchange(token_file, client, sleeps=sleeps)()
    assert len(client.calls) == 1 and sleeps == []
    assert caught.value.code == "ValidationError"
    assert caught.value.__cause__ is fault
    assert "MaxSessionDuration" in str(caught.value)
    assert "AWS_ROLE_ARN" in str(caught.value)


def test_access_denied_explains_the_trust_policy(token_file):
    client = FakeClient(client_error("AccessDenied", 403, "Not authorized to perform sts:AssumeRoleWithWebIdentity"))
    with pytest.raises(RefreshError) as caught:
        exchange(token_file, client)()
    text = str(caught.value)
    assert caught.value.code == "AccessDenied"
    assert len(client.calls) == 1
    for needed in (ROLE_ARN, ISSUER, SUBJECT, "sts.amazonaws.com", token_file, "trust policy"):
        assert needed in text
    host = ISSUER[len("https://"):]
    assert "arn:aws:iam::111122223333:oidc-provider/" + host in text
    assert host + ":sub" in text and host + ":aud" in text
    assert open(token_file).read().strip() not in text


def test_access_denied_with_a_token_that_is_not_a_jwt(tmp_path):
    path = tmp_path / "token"
    path.write_text("not-a-jwt-at-all-but-long-enough")
    client = FakeClient(client_error("AccessDenied", 403, "Not authorized"))
    with pytest.raises(RefreshError) as caught:
        exchange(str(path), client)()
    text = str(caught.value)
    assert "is not a JWT" in text and "AWS_WEB_IDENTITY_TOKEN_FILE" in text
    assert "not-a-jwt-at-all-but-long-enough" not in text


def test_expired_token_is_read_again_and_retried_once(token_file):
    expired = client_error("ExpiredTokenException", message="Token expired: current date/time is after exp")
    client = FakeClient(expired, expired, answer())
    tokens = Tokens(token_file)
    with pytest.raises(RefreshError) as caught:
        exchange(token_file, client, read_token=tokens)()
    assert len(client.calls) == 2 and len(set(tokens.handed)) == 2
    text = str(caught.value)
    assert caught.value.code == "ExpiredTokenException"
    assert "expired" in text and "kubelet" in text and token_file in text


def test_expired_then_rotated_token_succeeds(token_file):
    client = FakeClient(client_error("ExpiredTokenException"), answer())
    assert exchange(token_file, client)().access_key == "ASIAEXAMPLEEXAMPLE01"
    assert len(client.calls) == 2


def test_token_file_error_is_raised_before_any_call(tmp_path):
    client = FakeClient(answer())
    with pytest.raises(TokenFileError):
        exchange(str(tmp_path / "gone"), client)()
    assert client.calls == []


def test_unexpected_errors_are_wrapped_not_retried(token_file):
    client = FakeClient(KeyError("Credentials"), answer())
    with pytest.raises(RefreshError) as caught:
        exchange(token_file, client)()
    assert len(client.calls) == 1
    assert isinstance(caught.value, IrsaError)
    assert "KeyError" in str(caught.value)


# --- the real botocore client (legacy and newest) against the loopback fake ----


def real_exchange(fake_sts, token_file, **settings):
    resolved = config.resolve(
        role_arn=ROLE_ARN, token_file=token_file, sts_endpoint_url=fake_sts.url, environ={}, **settings
    )
    return sts.Exchange(resolved, retry=FAST)


def test_request_is_unsigned_and_carries_every_setting(fake_sts, token_file, monkeypatch):
    def no_metadata(self):
        raise AssertionError("the STS client looked for credentials")

    monkeypatch.delenv("AWS_EC2_METADATA_DISABLED")
    monkeypatch.setattr(botocore.credentials.InstanceMetadataProvider, "load", no_metadata)
    monkeypatch.setattr(botocore.credentials.EnvProvider, "load", no_metadata)
    issued = real_exchange(
        fake_sts,
        token_file,
        session_name="pod-7",
        duration_seconds=900,
        policy='{"Version": "2012-10-17", "Statement": []}',
        policy_arns=["arn:aws:iam::aws:policy/ReadOnlyAccess", "arn:aws:iam::111122223333:policy/extra"],
    )()
    assert issued.access_key == fake_sts.issued[0]["access_key"]
    call = fake_sts.calls[0]
    headers = dict((key.lower(), value) for key, value in call["headers"].items())
    assert "authorization" not in headers
    assert "x-amz-security-token" not in headers
    params = call["params"]
    assert params["Action"] == "AssumeRoleWithWebIdentity"
    assert params["RoleArn"] == ROLE_ARN
    assert params["RoleSessionName"] == "pod-7"
    assert params["DurationSeconds"] == "900"
    assert params["Policy"].startswith('{"Version"')
    assert params["PolicyArns.member.1.arn"] == "arn:aws:iam::aws:policy/ReadOnlyAccess"
    assert params["PolicyArns.member.2.arn"] == "arn:aws:iam::111122223333:policy/extra"
    assert call["token"] == open(token_file).read().strip()
    assert abs(issued.expiry - fake_sts.issued[0]["expiration"]) < 1


def test_regional_endpoint_even_on_legacy_botocore():
    settings = config.resolve(role_arn=ROLE_ARN, token_file="/t", region_name="eu-central-1", environ={})
    client = sts._default_client(settings)
    assert client.meta.endpoint_url == "https://sts.eu-central-1.amazonaws.com"
    settings = config.resolve(role_arn=ROLE_ARN, token_file="/t", region_name="cn-north-1", environ={})
    assert sts._default_client(settings).meta.endpoint_url == "https://sts.cn-north-1.amazonaws.com.cn"


@pytest.mark.parametrize("fault", ["throttle", "drop", "malformed", "503"])
def test_loopback_faults_recover(fake_sts, token_file, fault):
    if fault == "throttle":
        fake_sts.fail_next(2, "Throttling")
    elif fault == "drop":
        fake_sts.drop_next(2)
    elif fault == "malformed":
        fake_sts.malformed_next(2)
    else:
        fake_sts.fail_next(2, "ServiceUnavailable", status=503)
    issued = real_exchange(fake_sts, token_file)()
    assert fake_sts.call_count == 3
    assert issued.access_key == fake_sts.issued[-1]["access_key"]


def test_unreachable_sts_names_the_endpoint(token_file):
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    resolved = config.resolve(
        role_arn=ROLE_ARN, token_file=token_file, sts_endpoint_url="http://127.0.0.1:%d" % port, environ={}
    )
    with pytest.raises(RefreshError) as caught:
        sts.Exchange(resolved, retry=FAST)()
    text = str(caught.value)
    assert "could not reach STS at http://127.0.0.1:%d" % port in text
    assert "after 6 attempts" in text and "AWS_REGION" in text
    assert caught.value.code is None and caught.value.attempts == 6


@pytest.mark.parametrize(
    "values",
    [
        {"access_key": "ASIAEXAMPLE\nX=1EXAMPLE"},
        {"secret_key": "wJalrXUtnFEMI/K7MDENG\nAWS_PROFILE=evil"},
        {"session_token": "FwoGZXIvYXdz EXAMPLE"},
        {"session_token": "FwoGZX'\"$(reboot)\"IvYXdzEXAMPLE"},
        {"access_key": "short"},
    ],
)
def test_values_sts_could_not_have_issued_are_refused(fake_sts, token_file, values):
    fake_sts.odd_values_next(1, **values)
    settings = config.resolve(
        role_arn=ROLE_ARN, token_file=token_file, sts_endpoint_url=fake_sts.url, environ={}
    )
    with pytest.raises(RefreshError) as caught:
        sts.Exchange(settings, retry=FAST)()
    message = str(caught.value)
    assert "refusing credentials" in message and fake_sts.url in message
    assert fake_sts.call_count == 1  # not retried
    for value in values.values():
        assert value not in message
    assert sts.Exchange(settings, retry=FAST)().access_key == fake_sts.issued[-1]["access_key"]


def test_client_factory_trouble_is_a_refresh_error(token_file):
    """botocore 1.8's component locator can raise KeyError under threads: never raw."""

    def broken(settings):
        raise KeyError("endpoint_resolver")

    resolved = config.resolve(role_arn=ROLE_ARN, token_file=token_file, environ={})
    with pytest.raises(RefreshError) as caught:
        sts.Exchange(resolved, client_factory=broken, retry=FAST)()
    assert "could not build the STS client" in str(caught.value)
    assert "KeyError" in str(caught.value)


def test_the_shared_sts_session_has_nothing_left_to_build_lazily(token_file, fake_sts):
    """botocore's lazy components race under threads (KeyError): none is left."""
    from irsa_session import _compat

    settings = config.resolve(role_arn=ROLE_ARN, token_file=token_file, sts_endpoint_url=fake_sts.url, environ={})
    sts.Exchange(settings, retry=FAST)()
    (session,) = _compat._sts_session
    for name in ("_components", "_internal_components"):
        locator = getattr(session, name, None)
        if locator is not None:
            assert locator._deferred == {}, name


@pytest.mark.parametrize("variable", ["HTTP_PROXY", "http_proxy"])
def test_a_loopback_endpoint_is_reached_directly_never_through_a_proxy(fake_env, monkeypatch, variable):
    """Plain http is allowed to this machine only because the token stays on it."""
    from irsa_session import assumed_role_session
    from irsa_testing.servers import ProxyTrap

    with ProxyTrap() as proxy:
        monkeypatch.setenv(variable, proxy.base_url)
        frozen = assumed_role_session().get_credentials().get_frozen_credentials()
        assert proxy.seen == []
    assert frozen.access_key == fake_env.issued[0]["access_key"]
    assert fake_env.call_count == 1


# -- a hung endpoint: one deadline for the whole fetch -------------------------------


def test_a_hung_sts_gives_up_within_the_deadline_and_says_what_hung(fake_sts, token_file):
    """STS accepts the connection and never answers: each attempt waits out its read
    timeout, and no attempt starts that could not end before the deadline."""
    fake_sts.set_mode(delay=60)
    settings = config.resolve(role_arn=ROLE_ARN, token_file=token_file, sts_endpoint_url=fake_sts.url, environ={})
    exchange = sts.Exchange(
        settings,
        client_factory=lambda s: sts._compat.sts_client(s.sts_endpoint_url, "us-east-1", 0.5, 0.5),
        retry=sts.RetryPolicy(attempts=6, base=0.2, cap=0.4),
        deadline=2.5,
    )
    exchange.attempt_timeout = 1.0  # connect and read, as the client above has them
    started = time.monotonic()
    with pytest.raises(RefreshError) as caught:
        exchange()
    took = time.monotonic() - started
    assert took <= 2.5 + 0.5, "the fetch took %.1f s past its 2.5 s deadline" % took
    assert 2 <= fake_sts.call_count < 6  # it retried while attempts still fit, then stopped
    text = str(caught.value)
    assert "could not reach STS at %s" % fake_sts.url in text and "Timeout" in text
    assert "2.5 s a fetch may take (IRSA_SESSION_DEADLINE)" in text


def test_the_deadline_setting_is_checked(monkeypatch):
    monkeypatch.setenv("IRSA_SESSION_DEADLINE", "45")
    assert sts.Exchange(config.resolve(role_arn=ROLE_ARN, token_file="/t", environ={})).deadline == 45.0
    for bad in ("soon", "5", "99999"):
        monkeypatch.setenv("IRSA_SESSION_DEADLINE", bad)
        with pytest.raises(ConfigError) as caught:
            sts.Exchange(config.resolve(role_arn=ROLE_ARN, token_file="/t", environ={}))
        assert "IRSA_SESSION_DEADLINE=%r" % bad in str(caught.value)


def test_a_session_on_a_hung_sts_gives_up_within_the_deadline(fake_env, monkeypatch):
    """Through the public API, with the client's own timeouts (10 s read): 20 s at most."""
    from irsa_session import assumed_role_session

    monkeypatch.setenv("IRSA_SESSION_DEADLINE", "20")
    fake_env.set_mode(delay=60)
    started = time.monotonic()
    with pytest.raises(RefreshError) as caught:
        assumed_role_session().get_credentials().get_frozen_credentials()
    took = time.monotonic() - started
    assert took <= 20.5, took
    assert "20 s a fetch may take" in str(caught.value)
