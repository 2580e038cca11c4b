"""Native readers on the library's credentials: deltalake and polars (the tests-data row).

S3 is moto behind the SigV4-checking proxy; every request must be signed by a key
the FakeSTS issued, and the STS calls are counted.  deltalake (delta-rs, Rust's
object_store) takes its credentials from serve()'s endpoint in a process of its
own; polars from install()'s boto3 (CredentialProviderAWS) or from a callable.
"""

import io

import pytest

from irsa_testing.rows import need

ROWS = ("tests-data",)  # its job is to run this module: no skips there
deltalake = need("deltalake", ROWS)
pl = need("polars", ROWS)
pa = need("pyarrow", ROWS)

import irsa_session  # noqa: E402
from irsa_testing.datastack import (  # noqa: E402,F401  (fixtures)
    assert_all_signed_by_issued, assume_calls, bucket, native_env, proxy, run_python,
)


def options(proxy):
    return {"aws_endpoint_url": proxy.url, "aws_allow_http": "true", "aws_region": "us-east-1"}


def test_deltalake_and_polars_in_another_process_share_serve_s_one_sts_call(proxy, bucket, fake_env):
    uri = "s3://%s/delta/readings" % bucket
    with irsa_session.serve() as endpoint:
        env = native_env(endpoint)  # no IRSA: the endpoint's two variables only
        code = (
            "import deltalake, polars as pl, pyarrow as pa\n"
            "opts = dict(%r, AWS_S3_ALLOW_UNSAFE_RENAME='true')\n"
            "deltalake.write_deltalake(%r, pa.table({'city': ['oslo', 'lima']}), storage_options=opts)\n"
            "for _ in range(3):\n"
            "    print(deltalake.DeltaTable(%r, storage_options=opts).to_pyarrow_table().num_rows)\n"
            "print(pl.read_delta(%r, storage_options=opts).height)\n" % (options(proxy), uri, uri, uri)
        )
        out = run_python(code, env=env, timeout=120).decode().split()
    assert out == ["2", "2", "2", "2"]
    assert_all_signed_by_issued(proxy, fake_env)
    assert proxy.keys() == [fake_env.issued[0]["access_key"]]
    assert len(assume_calls(fake_env)) == 1  # one exchange, the endpoint's, for every read


@pytest.fixture
def parquet_object(proxy, bucket, moto_server):
    import boto3

    out = io.BytesIO()
    pl.DataFrame({"reading": [3, 19, 27]}).write_parquet(out)
    boto3.client(
        "s3", endpoint_url=moto_server.url, region_name="us-east-1",
        aws_access_key_id="testing", aws_secret_access_key="testing",
    ).put_object(Bucket=bucket, Key="raw/polars.parquet", Body=out.getvalue())
    return "s3://%s/raw/polars.parquet" % bucket


def test_polars_after_install_through_boto3(proxy, parquet_object, fake_env):
    irsa_session.install()
    frame = pl.read_parquet(parquet_object, storage_options=options(proxy),
                            credential_provider=pl.CredentialProviderAWS())
    assert frame["reading"].sum() == 49
    assert_all_signed_by_issued(proxy, fake_env)
    assert len(assume_calls(fake_env)) == 1


def test_polars_with_a_credential_provider_callable(proxy, parquet_object, fake_env):
    def provider():
        credentials = irsa_session.session.get_credentials()
        frozen = credentials.get_frozen_credentials()
        keys = {"aws_access_key_id": frozen.access_key, "aws_secret_access_key": frozen.secret_key,
                "aws_session_token": frozen.token}
        return keys, int(credentials.expires_at.timestamp())

    for _ in range(3):
        assert pl.read_parquet(parquet_object, storage_options=options(proxy), credential_provider=provider).height == 3
    assert_all_signed_by_issued(proxy, fake_env)
    assert len(assume_calls(fake_env)) == 1
