"""No token, secret key or session token in any log record, repr, error or pickle."""

import pickle
import socket

import pytest

from irsa_session import IrsaError, _redact, assumed_role_session, config, sts
from irsa_session.credentials import ADVISORY, Credentials
from irsa_testing.clock import FakeClock
from irsa_testing.leaks import assert_clean, secrets_of
from irsa_testing.scenarios import chain_of
from irsa_testing.tokens import make_token

FAST = sts.RetryPolicy(attempts=3, base=0.01, cap=0.02)


def test_full_cycle_and_signed_requests_at_debug(fake_env, moto_server, capture, tmp_path):
    """First fetch, an advisory refresh with a rotated token, signed S3 calls."""
    clock = FakeClock()
    settings = config.resolve(environ=None)
    creds = Credentials(sts.Exchange(settings), clock=clock, settings=settings)
    session = assumed_role_session()
    session._session._credentials = creds  # drive this session's refresh by the fake clock
    s3 = session.client("s3", endpoint_url=moto_server.url, region_name="us-east-1")
    s3.list_buckets()
    tokens = [fake_env.calls[-1]["token"]]
    rotated = make_token(jti="rotated")
    with open(settings.token_file, "w") as handle:
        handle.write(rotated)
    clock.tick(3600 - ADVISORY + 1)
    s3.list_buckets()
    assert fake_env.call_count == 2 and fake_env.calls[-1]["token"] == rotated
    tokens.append(rotated)
    s3.list_buckets()
    secrets = secrets_of(fake_env, tokens=tokens)
    assert len(capture.lines) > 20  # botocore really logged the exchange and the calls
    assert any("AssumeRoleWithWebIdentity" in line for line in capture.lines)
    assert any("x-amz-security-token" in line.lower() for line in capture.lines)
    assert_clean(capture.lines, secrets)
    frozen = creds.get_frozen_credentials()
    assert_clean([repr(session), repr(creds), repr(frozen), str(frozen)], secrets)
    assert_clean([pickle.dumps(session).decode("latin-1")], secrets)


@pytest.mark.parametrize("fault", ["AccessDenied", "Throttling", "ExpiredTokenException", "InvalidIdentityToken"])
def test_failure_paths_at_debug(fake_env, capture, fault):
    fake_env.set_mode(always_fail=(fault, None))
    settings = config.resolve()
    exchange = sts.Exchange(settings, retry=FAST)
    with pytest.raises(IrsaError) as caught:
        exchange()
    tokens = [call["token"] for call in fake_env.calls]
    assert tokens
    assert_clean(capture.lines + [str(caught.value), repr(caught.value)], tokens)


def test_unreachable_sts_at_debug(irsa_env, capture, monkeypatch):
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    monkeypatch.setenv("AWS_ENDPOINT_URL_STS", "http://127.0.0.1:%d" % port)
    exchange = sts.Exchange(config.resolve(), retry=FAST)
    with pytest.raises(IrsaError) as caught:
        exchange()
    token = open(irsa_env).read().strip()
    assert_clean(capture.lines + [str(caught.value)], [token])


def test_scrub_masks_secret_shapes_before_values_are_known():
    lines = [
        "<SecretAccessKey>abc/def+ghi</SecretAccessKey><SessionToken>FwoGZX+/=</SessionToken>",
        "{'WebIdentityToken': 'eyJhbGciOi.eyJzdWIiOi.c2lnbmF0dXJl'}",
        "x-amz-security-token:FwoGZXIvYXdzEJr//////////wEaDOm",
        "headers={'X-Amz-Security-Token': b'FwoGZXIvYXdz+abc'}",
        "Action=AssumeRoleWithWebIdentity&WebIdentityToken=eyJhbGciOiJSUzI1&Version=2011",
    ]
    for line in lines:
        clean = _redact.scrub(line)
        for secret in ("abc/def+ghi", "FwoGZX", "eyJhbGciOi", "eyJhbGciOiJSUzI1"):
            assert secret not in clean, clean
    assert _redact.scrub("nothing secret here") == "nothing secret here"


def test_a_garbled_answer_leaves_no_secret_in_the_exception_chain(fake_env, capture):
    """A 200 cut off after the secrets: the parser's error quotes the whole body."""
    import traceback

    fake_env.truncated_next(3)
    exchange = sts.Exchange(config.resolve(), retry=FAST)
    with pytest.raises(IrsaError) as caught:
        exchange()
    assert [call["answered"] for call in fake_env.calls] == ["truncated"] * 3
    secrets = secrets_of(fake_env)
    assert len(secrets) == 1 + 3 * 2  # the token (sent three times), three keys and tokens
    texts = ["".join(traceback.format_exception(type(e), e, e.__traceback__)) for e in chain_of(caught.value)]
    texts += [str(e) for e in chain_of(caught.value)] + [repr(e.args) for e in chain_of(caught.value)]
    assert "not a well-formed" in str(caught.value)
    assert_clean(texts + capture.lines, secrets)


def test_a_refused_exchange_keeps_its_client_error_as_the_cause(fake_env):
    """Errors that quote nothing secret stay chained, for those who debug."""
    from botocore.exceptions import ClientError

    fake_env.fail_next(1, "AccessDenied")
    with pytest.raises(IrsaError) as caught:
        sts.Exchange(config.resolve(), retry=FAST)()
    assert isinstance(caught.value.__cause__, ClientError)


def test_values_stay_masked_however_many_credentials_a_process_holds(monkeypatch):
    """Many settings in one process: the oldest secret in use is still masked."""
    from collections import OrderedDict

    monkeypatch.setattr(_redact, "_known", OrderedDict())  # on this test's clock alone
    first = "first-secret-value-of-many-0000000000"
    _redact.remember(first, now=1000.0)
    for number in range(600):  # 600 sets of credentials, three secrets each
        _redact.remember(*("secret-%d-%d-abcdefgh" % (number, part) for part in range(3)), now=1000.0 + number)
    assert _redact.scrub("key=%s" % first) == "key=****"
    # Long after any credentials could still live, old values make room.
    _redact.remember("a-later-secret-value-0000", now=1000.0 + 14 * 3600)
    assert _redact.scrub("key=%s" % first) == "key=%s" % first
    assert _redact.scrub("a-later-secret-value-0000") == "****"


def _frame_locals(err):
    """repr of every local of every frame in the tracebacks of ``err`` and its chain."""
    texts = []
    for each in chain_of(err):
        tb = each.__traceback__
        while tb is not None:
            if tb.tb_frame.f_code.co_filename == __file__:  # the test's own frame
                tb = tb.tb_next
                continue
            for name, value in tb.tb_frame.f_locals.items():
                try:
                    texts.append("%s=%r" % (name, value))
                except Exception:  # a repr that fails shows nothing
                    pass
            tb = tb.tb_next
    return texts


@pytest.mark.parametrize("answer", ["truncated", "malformed", "odd values", "AccessDenied"])
def test_no_frame_of_a_raised_error_s_traceback_holds_a_secret(fake_env, answer):
    """Sentry and rich print the locals of every frame: none may hold the token or keys."""
    if answer == "truncated":
        fake_env.truncated_next(3)
    elif answer == "malformed":
        fake_env.malformed_next(3)
    elif answer == "odd values":
        fake_env.odd_values_next(3, secret_key="wJalrXUtnFEMI/K7MDENG\nAWS_PROFILE=evil")
    else:
        fake_env.fail_next(3, "AccessDenied")
    settings = config.resolve()
    credentials = Credentials(sts.Exchange(settings, retry=FAST), settings=settings)
    with pytest.raises(IrsaError) as caught:
        credentials.get_frozen_credentials()
    texts = _frame_locals(caught.value)
    assert texts, "no frame to look at"
    assert_clean(texts, secrets_of(fake_env), what="the locals of the traceback's frames")


def test_no_frame_of_a_token_file_error_holds_the_token(fake_env, tmp_path):
    token = make_token()
    path = tmp_path / "token"
    path.write_bytes(token.encode() + b"\xff")  # not UTF-8: the reader held the bytes
    with pytest.raises(IrsaError) as caught:
        assumed_role_session(token_file=str(path)).get_credentials().get_frozen_credentials()
    assert_clean(_frame_locals(caught.value), [token], what="the locals of the traceback's frames")


def test_url_encoded_secrets_are_masked_in_any_record(fake_env, capture):
    """A secret can reach a record URL-encoded, with no field name around it (a URL in an
    error of some library): the values the library learnt are masked in that form too."""
    import logging
    from urllib.parse import quote

    settings = config.resolve()
    Credentials(sts.Exchange(settings, retry=FAST), settings=settings).get_frozen_credentials()
    secrets = secrets_of(fake_env)
    assert any(quote(secret, safe="") != secret for secret in secrets)  # "/" and "+" in keys
    for secret in secrets:
        logging.getLogger("botocore.endpoint").debug("retrying https://example.invalid/x?v=%s", quote(secret, safe=""))
        logging.getLogger("urllib3.connectionpool").debug("GET /k?sig=%s 403", quote(secret, safe=""))
    assert_clean(capture.lines, secrets)
