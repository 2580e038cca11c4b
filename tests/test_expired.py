"""A service's ExpiredToken: one refresh for every request that saw it, and one retry.

S3 here is moto behind the SigV4-checking proxy, whose clock runs 3 s ahead of
the pod's: it refuses 6-second credentials for the last half of their life, while
the library takes them for valid until its advisory window (1.5 s before expiry).
That is the pod whose clock is behind, scaled down from minutes to seconds.
"""

import threading
import time
import uuid

import boto3
import pytest
from botocore.exceptions import ClientError

import irsa_session
from irsa_session import assumed_role_session
from irsa_testing.s3proxy import S3Proxy

SKEW = 3.0  # seconds the service's clock is ahead
LIFE = 6  # seconds the credentials live


@pytest.fixture
def ahead(moto_server, fake_env):
    """The proxy with a clock SKEW ahead, in front of a bucket with one object."""
    fake_env.set_mode(duration=LIFE, honor_duration=False)
    name = "expired-%s" % uuid.uuid4().hex[:10]
    s3 = boto3.client(
        "s3", endpoint_url=moto_server.url, region_name="us-east-1",
        aws_access_key_id="testing", aws_secret_access_key="testing",
    )
    s3.create_bucket(Bucket=name)
    s3.put_object(Bucket=name, Key="k", Body=b"payload")
    with S3Proxy(moto_server.url, lambda: fake_env.issued, clock=lambda: time.time() + SKEW) as proxy:
        proxy.bucket = name
        yield proxy


def read_for(client, bucket, seconds, threads=4):
    """Each thread reads the object in a loop; returns the errors the callers saw."""
    errors = []
    deadline = time.monotonic() + seconds

    def reader():
        while time.monotonic() < deadline:
            try:
                assert client.get_object(Bucket=bucket, Key="k")["Body"].read() == b"payload"
            except Exception as err:  # counted: the test wants none
                errors.append(err)
            time.sleep(0.05)

    pool = [threading.Thread(target=reader) for _ in range(threads)]
    for thread in pool:
        thread.start()
    for thread in pool:
        thread.join(60)
    return errors


def assert_each_expiry_cost_one_refresh(proxy, sts):
    seen = proxy.seen
    refused = [s for s in seen if s.verdict == "ExpiredToken"]
    assert refused, "the service never refused a key early: the test proves nothing"
    assert set(s.verdict for s in seen) <= {"ok", "ExpiredToken"}
    # One STS call per set of credentials, however many requests saw it refused.
    keys = proxy.keys()
    assert sts.call_count == len(sts.issued) <= len(keys) + 1
    refused_keys = set(s.access_key for s in refused)
    assert len(refused) > len(refused_keys) or len(refused_keys) >= 2  # concurrent requests saw it


def test_boto3_sees_no_failure_when_the_service_refuses_credentials_early(ahead, fake_env):
    client = assumed_role_session().client("s3", endpoint_url=ahead.url, region_name="us-east-1")
    errors = read_for(client, ahead.bucket, seconds=2 * LIFE)
    assert errors == []
    assert_each_expiry_cost_one_refresh(ahead, fake_env)


def test_unchanged_code_after_install_sees_no_failure_either(ahead, fake_env):
    irsa_session.install()
    client = boto3.client("s3", endpoint_url=ahead.url, region_name="us-east-1")
    errors = read_for(client, ahead.bucket, seconds=2 * LIFE)
    assert errors == []
    assert_each_expiry_cost_one_refresh(ahead, fake_env)


def test_one_refresh_and_one_retry_only(ahead, fake_env):
    """A service that refuses every key: one refresh, one retry, then its error stands."""
    client = assumed_role_session().client("s3", endpoint_url=ahead.url, region_name="us-east-1")
    client.get_object(Bucket=ahead.bucket, Key="k")
    ahead.clock = lambda: time.time() + 3600  # every key is expired to it now
    ahead.forget()
    with pytest.raises(ClientError) as caught:
        client.get_object(Bucket=ahead.bucket, Key="k")
    assert caught.value.response["Error"]["Code"] == "ExpiredToken"
    assert [s.verdict for s in ahead.seen] == ["ExpiredToken", "ExpiredToken"]
    first, second = [s.access_key for s in ahead.seen]
    assert first != second and fake_env.call_count == 2  # refreshed once, retried once


def test_requests_signed_with_other_credentials_are_left_alone(moto_server, fake_env, monkeypatch):
    """Keys from the environment win after install(); their ExpiredToken is not the library's."""
    stale = {"access_key": "ASIAENVIRONMENTKEY01", "secret_key": "x" * 40,
             "session_token": "FwoGZXIvYXdzEnvironmentToken", "expiration": time.time() - 60}
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", stale["access_key"])
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", stale["secret_key"])
    monkeypatch.setenv("AWS_SESSION_TOKEN", stale["session_token"])
    irsa_session.install()
    with S3Proxy(moto_server.url, lambda: [stale]) as proxy:
        client = boto3.client("s3", endpoint_url=proxy.url, region_name="us-east-1")
        with pytest.raises(ClientError) as caught:
            client.list_buckets()
        assert caught.value.response["Error"]["Code"] == "ExpiredToken"
        assert [s.verdict for s in proxy.seen] == ["ExpiredToken"]  # not retried
    assert fake_env.call_count == 0
