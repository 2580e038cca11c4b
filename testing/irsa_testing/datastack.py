"""Fixtures and helpers shared by the data-stack tests (test_aio.py, test_arrow.py).

S3 is moto's server behind :class:`irsa_testing.s3proxy.S3Proxy`, which lets
through only requests signed by credentials the FakeSTS issued and not yet
expired, and records which key signed each.  STS is the FakeSTS of
``fake_env``: the fixtures need ``moto_server`` and ``fake_env`` from the tests'
conftest.py.
"""

__all__ = [
    "CSV", "BLOB", "assume_calls", "assert_all_signed_by_issued", "pod_identity_pod", "native_env", "parquet_bytes", "proxy", "bucket", "run_python",
]

import io
import os
import uuid

import boto3
import pytest

from irsa_testing.processes import run_python  # noqa: F401  (for the data-stack tests)
from irsa_testing.s3proxy import S3Proxy

CSV = b"city,reading\noslo,3\nlima,19\ncairo,27\n"
BLOB = os.urandom(48 * 1024)


def assume_calls(sts):
    """The AssumeRoleWithWebIdentity calls the FakeSTS received."""
    return [call for call in sts.calls if call["action"] == "AssumeRoleWithWebIdentity"]


def assert_all_signed_by_issued(proxy, sts):
    """Every request passed the proxy's checks, and only keys ``sts`` issued signed them."""
    seen = proxy.seen
    assert seen, "no request reached S3"
    assert [s for s in seen if s.verdict != "ok"] == []
    assert set(proxy.keys()) <= set(c["access_key"] for c in sts.issued)


@pytest.fixture
def pod_identity_pod(moto_server, tmp_path, monkeypatch):
    """A pod with EKS Pod Identity and no IRSA: the agent (a FakeAgent, returned) on
    loopback, and S3 behind a checking proxy (``agent.proxy``) that takes its keys."""
    from irsa_testing.agent import FakeAgent
    from irsa_testing.tokens import make_token

    path = tmp_path / "eks-pod-identity-token"
    path.write_text(make_token(aud=["pods.eks.amazonaws.com"]))
    with FakeAgent(expect_token=lambda: path.read_text().strip()) as agent:
        with S3Proxy(moto_server.url, lambda: agent.issued) as proxy:
            monkeypatch.setenv("AWS_CONTAINER_CREDENTIALS_FULL_URI", agent.url)
            monkeypatch.setenv("AWS_CONTAINER_AUTHORIZATION_TOKEN_FILE", str(path))
            monkeypatch.setenv("AWS_REGION", "us-west-2")
            agent.proxy = proxy
            yield agent


def native_env(endpoint):
    """Changes to this environment for a child that gets its credentials only from
    ``endpoint`` (an irsa_session.serve() endpoint): no AWS variable but its two."""
    env = dict((name, None) for name in os.environ if name.startswith("AWS_"))
    env.update(endpoint.environ(), AWS_EC2_METADATA_DISABLED="true",
               AWS_CONFIG_FILE=os.devnull, AWS_SHARED_CREDENTIALS_FILE=os.devnull)
    return env


def parquet_bytes():
    import pyarrow as pa
    import pyarrow.parquet as pq

    out = io.BytesIO()
    pq.write_table(pa.table({"city": ["oslo", "lima", "cairo"], "reading": [3, 19, 27]}), out)
    return out.getvalue()


@pytest.fixture
def proxy(moto_server, fake_env):
    """The checking proxy in front of moto, accepting what the FakeSTS issued."""
    with S3Proxy(moto_server.url, lambda: fake_env.issued) as running:
        yield running


@pytest.fixture
def bucket(moto_server):
    """A fresh bucket on moto (made directly, not through the proxy) with test objects."""
    name = "irsa-data-%s" % uuid.uuid4().hex[:10]
    s3 = boto3.client(
        "s3",
        endpoint_url=moto_server.url,
        region_name="us-east-1",
        aws_access_key_id="testing",
        aws_secret_access_key="testing",
    )
    s3.create_bucket(Bucket=name)
    s3.put_object(Bucket=name, Key="raw/readings.csv", Body=CSV)
    s3.put_object(Bucket=name, Key="raw/readings.parquet", Body=parquet_bytes())
    s3.put_object(Bucket=name, Key="raw/blob.bin", Body=BLOB)
    return name
