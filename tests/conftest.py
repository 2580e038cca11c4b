"""Shared fixtures: a clean environment, a token file, a fake clock, servers, log capture.

The stand-ins themselves live in the irsa_testing package (``pip install ./testing``).
"""

import os

import boto3
import pytest

import irsa_session
from irsa_session import _aio, _compat, _pandas, sessions
from irsa_testing import ROLE_ARN
from irsa_testing.clock import FakeClock
from irsa_testing.moto import MotoServer
from irsa_testing.servers import FakeSTS
from irsa_testing.tokens import make_token


#: Variables that change what the library does, and so must not come from the machine.
INHERITED_PREFIXES = ("AWS_", "IRSA_SESSION_")
PROXY_VARIABLES = ("http_proxy", "https_proxy", "all_proxy", "no_proxy")


def _inherited(environ):
    return sorted(
        name for name in environ
        if name.startswith(INHERITED_PREFIXES) or name.lower() in PROXY_VARIABLES
    )


#: What clean_env sets itself.
SET_BY_CLEAN_ENV = ["AWS_CONFIG_FILE", "AWS_EC2_METADATA_DISABLED", "AWS_SHARED_CREDENTIALS_FILE"]
#: What this machine set when the tests started (the noxfile's rows set some on purpose).
MACHINE_SETTINGS = _inherited(os.environ)


@pytest.fixture(autouse=True)
def clean_env(monkeypatch, tmp_path):
    """No AWS, library or proxy settings leak in from the machine; the registry starts empty."""
    for name in _inherited(os.environ):
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
    _pandas.install(None)


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

    from irsa_testing.scenarios import Capture

    root = logging.getLogger()
    handler = Capture()
    level = root.level
    root.addHandler(handler)
    root.setLevel(logging.DEBUG)
    yield handler
    root.removeHandler(handler)
    root.setLevel(level)
