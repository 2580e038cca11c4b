"""Tests of the test servers themselves, with the standard library only."""

import http.client
import os
import re
import socket
import time
import urllib.error
import urllib.parse
import urllib.request
import xml.etree.ElementTree as ET

import pytest

from irsa_testing.moto import MotoServer
from irsa_testing.servers import FakeSTS, send

NS = {"sts": "https://sts.amazonaws.com/doc/2011-06-15/"}
ROLE = "arn:aws:iam::111122223333:role/team/my-role"


def post(url, timeout=5, **params):
    """POST an STS query; return (status, body bytes)."""
    fields = {
        "Action": "AssumeRoleWithWebIdentity",
        "Version": "2011-06-15",
        "RoleArn": ROLE,
        "RoleSessionName": "sess1",
        "WebIdentityToken": "token-1",
    }
    fields.update(params)
    data = urllib.parse.urlencode(fields).encode()
    headers = {"Content-Type": "application/x-www-form-urlencoded"}
    return send("POST", url, data=data, headers=headers, timeout=timeout)


def error_code(body):
    """Return (Type, Code) of an ErrorResponse body."""
    root = ET.fromstring(body)
    return root.findtext("sts:Error/sts:Type", namespaces=NS), root.findtext(
        "sts:Error/sts:Code", namespaces=NS
    )


@pytest.fixture
def sts():
    with FakeSTS() as server:
        yield server


def test_success_has_sts_shape_and_fresh_keys(sts):
    bodies = [post(sts.url) for _ in range(2)]
    keys = []
    for status, body in bodies:
        assert status == 200
        root = ET.fromstring(body)
        assert root.tag == "{%s}AssumeRoleWithWebIdentityResponse" % NS["sts"]
        result = root.find("sts:AssumeRoleWithWebIdentityResult", NS)
        creds = result.find("sts:Credentials", NS)
        access = creds.findtext("sts:AccessKeyId", namespaces=NS)
        secret = creds.findtext("sts:SecretAccessKey", namespaces=NS)
        token = creds.findtext("sts:SessionToken", namespaces=NS)
        expiration = creds.findtext("sts:Expiration", namespaces=NS)
        assert re.match(r"^ASIA[A-Z0-9]{16}$", access)
        assert len(secret) == 40 and "/" in secret and "+" in secret
        assert len(token) >= 300
        assert re.match(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ$", expiration)
        arn = result.findtext("sts:AssumedRoleUser/sts:Arn", namespaces=NS)
        assert arn == "arn:aws:sts::111122223333:assumed-role/my-role/sess1"
        role_id = result.findtext("sts:AssumedRoleUser/sts:AssumedRoleId", namespaces=NS)
        assert role_id.startswith("AROA") and role_id.endswith(":sess1")
        assert result.findtext("sts:Audience", namespaces=NS) == "sts.amazonaws.com"
        assert root.findtext("sts:ResponseMetadata/sts:RequestId", namespaces=NS)
        keys.append((access, secret, token))
    assert keys[0][0] != keys[1][0]
    assert keys[0][1] != keys[1][1]
    assert keys[0][2] != keys[1][2]
    assert [(c["access_key"], c["secret_key"], c["session_token"]) for c in sts.issued] == keys
    assert abs(sts.issued[0]["expiration"] - (time.time() + 3600)) < 10


def test_duration_seconds_is_honoured_unless_disabled(sts):
    post(sts.url, DurationSeconds="900")
    assert abs(sts.issued[-1]["expiration"] - (time.time() + 900)) < 10
    sts.set_mode(honor_duration=False, duration=5)
    post(sts.url, DurationSeconds="900")
    assert abs(sts.issued[-1]["expiration"] - (time.time() + 5)) < 3


def test_fail_next_gives_code_and_status_then_recovers(sts):
    sts.fail_next(2, "AccessDenied")
    sts.fail_next(1, "InternalFailure")
    sts.fail_next(1, "Throttling", status=429, message="slow down")
    for expected in [(403, "Sender", "AccessDenied")] * 2 + [(500, "Receiver", "InternalFailure")]:
        status, body = post(sts.url)
        assert (status,) + error_code(body) == expected
    status, body = post(sts.url)
    assert (status, error_code(body)) == (429, ("Sender", "Throttling"))
    assert b"slow down" in body
    assert post(sts.url)[0] == 200
    assert [c["answered"] for c in sts.calls] == [
        "AccessDenied", "AccessDenied", "InternalFailure", "Throttling", "ok"
    ]


def test_drop_next_closes_the_connection_without_answer(sts):
    sts.drop_next(1)
    with pytest.raises((urllib.error.URLError, http.client.HTTPException, ConnectionError)):
        post(sts.url)
    assert post(sts.url)[0] == 200
    assert [c["answered"] for c in sts.calls] == ["drop", "ok"]


def test_malformed_next_answers_200_with_broken_xml(sts):
    sts.malformed_next(1)
    status, body = post(sts.url)
    assert status == 200
    with pytest.raises(ET.ParseError):
        ET.fromstring(body)
    assert ET.fromstring(post(sts.url)[1]) is not None


def test_rate_limit_throttles_beyond_the_limit(sts):
    sts.set_mode(rate_limit=2)
    answers = [post(sts.url)[0] for _ in range(5)]
    assert answers[:2] == [200, 200]
    assert 400 in answers[2:]
    assert any(c["answered"] == "Throttling" for c in sts.calls)
    time.sleep(1.1)
    assert post(sts.url)[0] == 200


def test_always_fail_and_delay(sts):
    sts.set_mode(always_fail=("ServiceUnavailable", None))
    status, body = post(sts.url)
    assert (status, error_code(body)) == (503, ("Receiver", "ServiceUnavailable"))
    sts.set_mode(always_fail=None, delay=0.3)
    started = time.monotonic()
    assert post(sts.url)[0] == 200
    assert time.monotonic() - started >= 0.3
    with pytest.raises((socket.timeout, urllib.error.URLError)):
        post(sts.url, timeout=0.1)


def test_calls_record_token_and_params(sts):
    post(sts.url, WebIdentityToken="eyJ-first", DurationSeconds="1800")
    post(sts.url, WebIdentityToken="eyJ-second", Policy='{"Version":"2012-10-17"}')
    calls = sts.calls
    assert sts.call_count == 2
    assert [c["token"] for c in calls] == ["eyJ-first", "eyJ-second"]
    assert calls[0]["params"]["RoleArn"] == ROLE
    assert calls[0]["params"]["DurationSeconds"] == "1800"
    assert calls[1]["params"]["Policy"] == '{"Version":"2012-10-17"}'
    headers = {k.lower(): v for k, v in calls[0]["headers"].items()}
    assert headers["content-type"] == "application/x-www-form-urlencoded"
    assert all(c["answered"] == "ok" for c in calls)


def test_missing_parameter_and_get_caller_identity(sts):
    status, body = post(sts.url, Action="GetCallerIdentity")
    assert (status, error_code(body)) == (403, ("Sender", "InvalidClientTokenId"))
    status, body = post(sts.url, WebIdentityToken="")
    assert (status, error_code(body)) == (400, ("Sender", "ValidationError"))
    post(sts.url)
    status, body = post(sts.url, Action="GetCallerIdentity")
    assert status == 200
    root = ET.fromstring(body)
    arn = root.findtext("sts:GetCallerIdentityResult/sts:Arn", namespaces=NS)
    assert arn == sts.issued[-1]["arn"]


def test_moto_server_starts_answers_and_stops():
    try:
        server = MotoServer()
    except RuntimeError as err:
        if os.environ.get("CI"):
            pytest.fail("CI must have a moto server: %s" % err)
        pytest.skip("no moto server here (run ./dev test): %s" % err)
    with server:
        process = server.process
        assert send("GET", server.url + "/moto-api/", timeout=10)[0] == 200
        server.reset()
    assert process.poll() is not None
    assert server.process is None
