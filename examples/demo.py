"""irsa-session end to end on loopback, with no AWS account.

Plays the part of EKS: writes a JWT-shaped service-account token, sets the
variables the pod identity webhook sets, and starts moto's server on 127.0.0.1
as STS and S3.  Then does what a pod does: ``from irsa_session import session``
and downloads an object with it.

    python examples/demo.py        # needs boto3, moto[server] and irsa-session
"""

import base64
import json
import os
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request


def b64url(data):
    return base64.urlsafe_b64encode(json.dumps(data).encode()).decode().rstrip("=")


def write_token(folder):
    """A token shaped like the one EKS projects (unsigned: moto does not check)."""
    claims = {
        "iss": "https://oidc.eks.us-west-2.amazonaws.com/id/EXAMPLED539D4633E53DE1B71EXAMPLE",
        "sub": "system:serviceaccount:team-a:default-editor",
        "aud": ["sts.amazonaws.com"],
        "exp": int(time.time()) + 86400,
    }
    token = ".".join([b64url({"alg": "RS256"}), b64url(claims), "c2lnbmF0dXJl"])
    path = os.path.join(folder, "token")
    with open(path, "w") as handle:
        handle.write(token)
    return path


def start_moto():
    """moto's server on a free loopback port; returns (process, url)."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    env = dict(os.environ, AWS_ACCESS_KEY_ID="testing", AWS_SECRET_ACCESS_KEY="testing")
    process = subprocess.Popen(
        [sys.executable, "-m", "moto.server", "-H", "127.0.0.1", "-p", str(port)],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env=env,
    )
    url = "http://127.0.0.1:%d" % port
    for _ in range(300):
        try:
            urllib.request.urlopen(url + "/moto-api/", timeout=1).close()
            return process, url
        except OSError:
            time.sleep(0.1)
    process.kill()
    raise SystemExit("moto's server did not start on %s" % url)


def main():
    folder = tempfile.mkdtemp(prefix="irsa-demo-")
    moto, url = start_moto()
    try:
        # What the EKS pod identity webhook puts in the pod's environment.
        os.environ.update(
            AWS_ROLE_ARN="arn:aws:iam::111122223333:role/demo-reader",
            AWS_WEB_IDENTITY_TOKEN_FILE=write_token(folder),
            AWS_REGION="us-west-2",
            AWS_ENDPOINT_URL_STS=url,  # loopback STS instead of sts.us-west-2.amazonaws.com
        )
        for name in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN", "AWS_PROFILE"):
            os.environ.pop(name, None)
        print("moto (STS and S3) on %s; token in %s" % (url, os.environ["AWS_WEB_IDENTITY_TOKEN_FILE"]))

        from irsa_session import session

        s3 = session.client("s3", endpoint_url=url)
        s3.create_bucket(Bucket="demo-bucket", CreateBucketConfiguration={"LocationConstraint": "us-west-2"})
        s3.put_object(Bucket="demo-bucket", Key="hello.txt", Body=b"hello from irsa-session\n")
        target = os.path.join(folder, "hello.txt")
        s3.download_file("demo-bucket", "hello.txt", target)
        with open(target) as handle:
            print("downloaded s3://demo-bucket/hello.txt: %r" % handle.read())

        identity = session.client("sts", endpoint_url=url).get_caller_identity()
        credentials = session.get_credentials()
        print("assumed role:   %s" % identity["Arn"])
        print("access key id:  %s  (the secret never leaves the process)" % credentials.access_key)
        print("expires at:     %s" % credentials.expires_at.isoformat())
        print("refreshes from: %s" % credentials.refresh_at.isoformat())
    finally:
        moto.terminate()
        moto.wait(10)


if __name__ == "__main__":
    main()
