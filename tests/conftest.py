"""Shared fixtures: a clean environment, JWT-shaped tokens, a fake clock, servers."""

import base64
import json
import os
import time

import boto3
import pytest

import irsa_session
from irsa_session import _aio, _compat, sessions

from servers import FakeSTS, MotoServer

ROLE_ARN = "arn:aws:iam::111122223333:role/team/data-reader"
ISSUER = "https://oidc.eks.us-west-2.amazonaws.com/id/EXAMPLED539D4633E53DE1B71EXAMPLE"
SUBJECT = "system:serviceaccount:team-a:default-editor"


def _b64(data):
    return base64.urlsafe_b64encode(json.dumps(data).encode()).decode().rstrip("=")


def make_token(exp_in=3600, **claims):
    """A JWT-shaped token (unsigned) like the one EKS projects into pods."""
    body = {
        "iss": ISSUER,
        "sub": SUBJECT,
        "aud": ["sts.amazonaws.com"],
        "exp": int(time.time() + exp_in),
        "iat": int(time.time()),
    }
    body.update(claims)
    header = {"alg": "RS256", "kid": "k1"}
    signature = base64.urlsafe_b64encode(os.urandom(64)).decode().rstrip("=")
    return "%s.%s.%s" % (_b64(header), _b64(body), signature)


class FakeClock(object):
    """Seconds since the epoch, moved only by ``tick``."""

    def __init__(self, start=None):
        self.now = time.time() if start is None else start

    def __call__(self):
        return self.now

    def tick(self, seconds):
        self.now += seconds


@pytest.fixture(autouse=True)
def clean_env(monkeypatch, tmp_path):
    """No AWS settings leak in from the machine; the registry starts empty."""
    for name in list(os.environ):
        if name.startswith("AWS_"):
            monkeypatch.delenv(name)
    monkeypatch.setenv("AWS_CONFIG_FILE", str(tmp_path / "no-config"))
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", str(tmp_path / "no-credentials"))
    monkeypatch.setenv("AWS_EC2_METADATA_DISABLED", "true")
    sessions._registry.clear()
    boto3.DEFAULT_SESSION = None
    yield
    sessions._registry.clear()
    boto3.DEFAULT_SESSION = None
    _compat.put_first_in_default_chain(None)
    _aio.install(None)


@pytest.fixture
def token_file(tmp_path):
    path = tmp_path / "token"
    path.write_text(make_token() + "\n")
    return str(path)


@pytest.fixture
def irsa_env(monkeypatch, token_file):
    """The variables the EKS pod identity webhook sets."""
    monkeypatch.setenv("AWS_ROLE_ARN", ROLE_ARN)
    monkeypatch.setenv("AWS_WEB_IDENTITY_TOKEN_FILE", token_file)
    monkeypatch.setenv("AWS_STS_REGIONAL_ENDPOINTS", "regional")
    monkeypatch.setenv("AWS_REGION", "us-west-2")
    monkeypatch.setenv("AWS_DEFAULT_REGION", "us-west-2")
    return token_file


@pytest.fixture(scope="session")
def moto_server():
    with MotoServer() as server:
        yield server


@pytest.fixture
def moto(moto_server, irsa_env, monkeypatch):
    """IRSA variables pointing STS at moto's server; returns the server."""
    monkeypatch.setenv("AWS_ENDPOINT_URL_STS", moto_server.url)
    return moto_server


@pytest.fixture
def fake_sts():
    with FakeSTS() as server:
        yield server


@pytest.fixture
def fake_env(fake_sts, irsa_env, monkeypatch):
    """IRSA variables pointing STS at the fault-injecting fake; returns it."""
    monkeypatch.setenv("AWS_ENDPOINT_URL_STS", fake_sts.url)
    return fake_sts


@pytest.fixture
def clock():
    return FakeClock()


@pytest.fixture
def package():
    return irsa_session


@pytest.fixture
def capture():
    """Every log record at DEBUG and above, as scrubbed text lines (``capture.lines``)."""
    import logging

    from scenarios import Capture

    root = logging.getLogger()
    handler = Capture()
    level = root.level
    root.addHandler(handler)
    root.setLevel(logging.DEBUG)
    yield handler
    root.removeHandler(handler)
    root.setLevel(level)
