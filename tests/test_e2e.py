"""End to end against moto's real server on loopback, as STS and S3, on every row."""

import uuid

import boto3
import pytest

from irsa_testing import ROLE_ARN


@pytest.fixture
def bucket(moto):
    """A fresh bucket on moto, made with the library's own session."""
    import irsa_session

    name = "irsa-%s" % uuid.uuid4().hex[:12]
    s3 = irsa_session.session.client("s3", endpoint_url=moto.url, region_name="us-east-1")
    s3.create_bucket(Bucket=name)
    s3.put_object(Bucket=name, Key="data/hello.txt", Body=b"hello from s3\n")
    return name


def test_session_downloads_through_assumed_role(moto, bucket, tmp_path):
    from irsa_session import session

    s3 = session.client("s3", endpoint_url=moto.url, region_name="us-east-1")
    target = str(tmp_path / "hello.txt")
    s3.download_file(bucket, "data/hello.txt", target)
    assert open(target, "rb").read() == b"hello from s3\n"
    identity = session.client("sts", endpoint_url=moto.url).get_caller_identity()
    role_name = ROLE_ARN.rsplit("/", 1)[1]
    assert identity["Arn"].startswith("arn:aws:sts::111122223333:assumed-role/%s/" % role_name)
    assert session.get_credentials().access_key.startswith("ASIA")


def test_installed_credentials_reach_unchanged_boto3_code(moto, bucket, tmp_path):
    import irsa_session

    installed = irsa_session.install()
    target = str(tmp_path / "seed.txt")
    # The seed script's line, with only the loopback endpoint added.
    boto3.client("s3", endpoint_url=moto.url).download_file(bucket, "data/hello.txt", target)
    assert open(target, "rb").read() == b"hello from s3\n"
    keys = [obj.key for obj in boto3.resource("s3", endpoint_url=moto.url).Bucket(bucket).objects.all()]
    assert keys == ["data/hello.txt"]
    fresh = boto3.Session().client("sts", endpoint_url=moto.url).get_caller_identity()
    assert ":assumed-role/" in fresh["Arn"]
    assert boto3.Session().get_credentials().get_frozen_credentials() == (
        installed.get_credentials().get_frozen_credentials()
    )
