"""EKS Pod Identity end to end on loopback, on any boto3 (1.4.8 included).

Plays the part of EKS: a fake Pod Identity agent (irsa_testing/agent.py) on 127.0.0.1
stands for the node's agent at 169.254.170.23, a projected token file, and the
two variables EKS sets; moto's server is S3, behind a proxy that refuses any key
the agent did not issue.  Then does what a pod does, unchanged code included:

    from irsa_session import session                   # Pod Identity, on every botocore
    irsa_session.install(); boto3.client("s3")          # the same credentials

and rotates the token between two refreshes.  Prints what happened.

    python examples/pod_identity.py    # from the repo; needs boto3 and a moto server
                                       # (moto_server on PATH, or IRSA_TEST_MOTO_SERVER)
                                       # and the stand-ins (pip install ./testing)
"""

import os
import sys
import tempfile

from irsa_testing.agent import FakeAgent  # the stand-ins: pip install ./testing
from irsa_testing.moto import MotoServer
from irsa_testing.s3proxy import S3Proxy
from irsa_testing.tokens import make_token, write_token


def write_pod_token(folder, serial):
    """A token shaped like the one EKS projects for Pod Identity (unsigned); returns its path."""
    token = make_token(exp_in=86400, aud=["pods.eks.amazonaws.com"], jti=str(serial))
    return write_token(folder, token, "eks-pod-identity-token")


def main():
    folder = tempfile.mkdtemp(prefix="irsa-pod-identity-")
    token_path = write_pod_token(folder, 1)
    with MotoServer() as moto, FakeAgent(expect_token=lambda: open(token_path).read()) as agent, \
            S3Proxy(moto.url, lambda: agent.issued) as s3:
        for name in list(os.environ):
            if name.startswith("AWS_"):
                del os.environ[name]
        os.environ.update(
            AWS_CONTAINER_CREDENTIALS_FULL_URI=agent.url,  # in EKS: http://169.254.170.23/v1/credentials
            AWS_CONTAINER_AUTHORIZATION_TOKEN_FILE=token_path,
            AWS_REGION="us-west-2",
            AWS_EC2_METADATA_DISABLED="true",
            AWS_CONFIG_FILE=os.devnull,
            AWS_SHARED_CREDENTIALS_FILE=os.devnull,
        )
        import boto3
        import irsa_session
        from irsa_session import session

        client = session.client("s3", endpoint_url=s3.url, region_name="us-east-1")
        client.create_bucket(Bucket="pod-identity-demo")
        client.put_object(Bucket="pod-identity-demo", Key="hello.txt", Body=b"hello from Pod Identity\n")
        irsa_session.install()
        body = boto3.client("s3", endpoint_url=s3.url, region_name="us-east-1").get_object(
            Bucket="pod-identity-demo", Key="hello.txt")["Body"].read()
        print("boto3 %s: unchanged boto3.client('s3') read %r" % (boto3.__version__, body.decode()))
        credentials = session.get_credentials()
        first = credentials.get_frozen_credentials().access_key
        write_pod_token(folder, 2)  # the kubelet rotates the token; the agent wants the new one
        credentials._expiry_time = credentials.expires_at.replace(year=2000)  # as if due
        second = credentials.get_frozen_credentials().access_key
        client.list_objects(Bucket="pod-identity-demo")
        print("agent calls:    %d (the second with the rotated token: %s)" % (
            agent.call_count, agent.calls[-1]["token"] == open(token_path).read()))
        print("access keys:    %s, then %s after the refresh" % (first, second))
        print("S3 requests:    %d signed by keys the agent issued, %d refused" % (
            len([seen for seen in s3.seen if seen.verdict == "ok"]),
            len([seen for seen in s3.seen if seen.verdict != "ok"])))
    return 0


if __name__ == "__main__":
    sys.exit(main())
