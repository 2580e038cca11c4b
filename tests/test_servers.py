"""Tests of the test servers themselves, with the standard library only."""

import datetime
import http.client
import http.server
import os
import re
import socket
import time
import urllib.error
import urllib.parse
import urllib.request
import xml.etree.ElementTree as ET
from xml.sax.saxutils import escape

import pytest

from irsa_testing.moto import MotoServer
from irsa_testing.s3proxy import S3Proxy
from irsa_testing.servers import FakeSTS, LoopbackServer, send
from irsa_testing.sigv4 import sign

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


def test_missing_parameter(sts):
    status, body = post(sts.url, WebIdentityToken="")
    assert (status, error_code(body)) == (400, ("Sender", "ValidationError"))


def caller_identity(sts, creds, **change):
    """GetCallerIdentity signed with ``creds`` (an issued record), ``change`` applied."""
    when = change.pop("when", None)
    values = dict(creds, **change)
    body, headers = sign(
        sts.url + "/", {"Action": "GetCallerIdentity", "Version": "2011-06-15"},
        values["access_key"], values["secret_key"], values["session_token"], when=when,
    )
    return send("POST", sts.url + "/", data=body, headers=headers)


def test_get_caller_identity_answers_only_a_live_key_it_issued(sts):
    """As AWS: the identity of the key that signed, and nothing for any other request."""
    status, body = post(sts.url, Action="GetCallerIdentity")  # unsigned
    assert (status, error_code(body)) == (403, ("Sender", "MissingAuthenticationToken"))
    post(sts.url, RoleSessionName="first")
    post(sts.url, RoleSessionName="second")
    first, second = sts.issued
    status, body = caller_identity(sts, first)
    assert status == 200
    arn = ET.fromstring(body).findtext("sts:GetCallerIdentityResult/sts:Arn", namespaces=NS)
    assert arn == first["arn"] != second["arn"]  # the signer's, not the last issued
    refused = {
        "forged": dict(secret_key=second["secret_key"]),
        "unknown key": dict(access_key="ASIAUNKNOWNUNKNOWN00"),
        "no session token": dict(session_token=None),
        "another key's session token": dict(session_token=second["session_token"]),
        "signed an hour ago": dict(when=datetime.datetime.utcnow() - datetime.timedelta(hours=1)),
    }
    for name, change in refused.items():
        status, body = caller_identity(sts, first, **change)
        assert status in (400, 403), name
        assert error_code(body)[1] in (
            "SignatureDoesNotMatch", "InvalidClientTokenId"
        ), (name, body)
    # Tampered: a valid signature, then the body changed on the way.
    body, headers = sign(sts.url + "/", {"Action": "GetCallerIdentity", "Version": "2011-06-15"},
                         first["access_key"], first["secret_key"], first["session_token"])
    status, answer = send("POST", sts.url + "/", data=body + b"&Extra=1", headers=headers)
    assert (status, error_code(answer)[1]) == (403, "SignatureDoesNotMatch")


def test_get_caller_identity_refuses_an_expired_key():
    now = [time.time()]
    with FakeSTS(duration=900, clock=lambda: now[0]) as sts:
        post(sts.url)
        creds = sts.issued[0]
        assert caller_identity(sts, creds)[0] == 200
        now[0] += 901
        status, body = caller_identity(sts, creds)
        assert (status, error_code(body)[1]) == (400, "ExpiredToken")


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


# -- the S3 proxy: every "signed by issued credentials" claim rests on it ---------------


class _Upstream(LoopbackServer):
    """Stands in for moto: answers every request 200, a GET with its path in XML."""

    class handler(http.server.BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def _any(self):
            body = b"<Path>%s</Path>" % escape(self.path).encode() if self.command == "GET" else b""
            length = int(self.headers.get("Content-Length") or 0)
            if length:
                self.rfile.read(length)
            self.send_response(200)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        do_GET = do_PUT = _any

        def log_message(self, format, *args):
            """Log nothing."""


@pytest.fixture
def s3proxy():
    now = [time.time()]
    issued = []
    with _Upstream() as upstream, S3Proxy(upstream.base_url, lambda: issued, clock=lambda: now[0]) as proxy:
        proxy.now, proxy.issued_list = now, issued
        yield proxy


def _s3_get(proxy, creds, path="/bucket/key.csv", tamper=None, **change):
    values = dict(creds, **change)
    _, headers = sign(proxy.url + path, {}, values["access_key"], values["secret_key"],
                      values["session_token"], service="s3", method="GET")
    return send("GET", proxy.url + (tamper or path), headers=headers)


def test_the_s3_proxy_passes_only_requests_signed_by_live_issued_keys(s3proxy):
    with FakeSTS() as issuer:
        post(issuer.url)
        post(issuer.url)
    first, second = issuer.issued
    s3proxy.issued_list.extend([first, second])
    assert _s3_get(s3proxy, first) == (200, b"<Path>/bucket/key.csv</Path>")
    status, body = send("GET", s3proxy.url + "/bucket/key.csv")
    assert (status, b"<Code>AccessDenied</Code>" in body) == (403, True)
    refused = [
        ("forged", dict(secret_key=second["secret_key"]), None, "SignatureDoesNotMatch"),
        ("tampered", {}, "/bucket/other.csv", "SignatureDoesNotMatch"),
        ("unknown", dict(access_key="ASIAUNKNOWNUNKNOWN00"), None, "InvalidAccessKeyId"),
        ("no session token", dict(session_token=None), None, "InvalidToken"),
        ("another's session token", dict(session_token=second["session_token"]), None, "InvalidToken"),
    ]
    for name, change, tamper, code in refused:
        status, body = _s3_get(s3proxy, first, tamper=tamper, **change)
        assert status in (400, 403) and ("<Code>%s</Code>" % code).encode() in body, (name, body)
    s3proxy.now[0] = first["expiration"]
    status, body = _s3_get(s3proxy, first)
    assert status == 400 and b"<Code>ExpiredToken</Code>" in body
    verdicts = [seen.verdict for seen in s3proxy.seen]
    assert verdicts == ["ok", "AccessDenied", "SignatureDoesNotMatch", "SignatureDoesNotMatch",
                        "InvalidAccessKeyId", "InvalidToken", "InvalidToken", "ExpiredToken"]
    assert s3proxy.keys() == [first["access_key"]]


def test_the_s3_proxy_verifies_what_botocore_signs(s3proxy):
    """A real client's signature (with keys, an odd path and a query) passes the check."""
    import boto3

    with FakeSTS() as issuer:
        post(issuer.url)
    creds = issuer.issued[0]
    s3proxy.issued_list.append(creds)
    client = boto3.session.Session(
        aws_access_key_id=creds["access_key"], aws_secret_access_key=creds["secret_key"],
        aws_session_token=creds["session_token"], region_name="us-east-1",
    ).client("s3", endpoint_url=s3proxy.url)
    client.list_objects(Bucket="bucket", Prefix="a b/c=d", Delimiter="/")
    client.put_object(Bucket="bucket", Key="dir/a+b c.txt", Body=b"x" * 100)
    assert [seen.verdict for seen in s3proxy.seen] == ["ok", "ok"]
    assert s3proxy.keys() == [creds["access_key"]]


def test_the_machines_settings_do_not_reach_a_test():
    """conftest.py clears what the machine set: a proxy or a cache directory changes results."""
    import conftest

    if os.environ.get("IRSA_TEST_ROW", "").startswith("tests-"):
        # The noxfile's rows set these on purpose, so that this test can fail.
        assert {"IRSA_SESSION_CACHE_DIR", "HTTP_PROXY", "https_proxy"} <= set(conftest.MACHINE_SETTINGS)
    assert conftest._inherited(os.environ) == conftest.SET_BY_CLEAN_ENV
