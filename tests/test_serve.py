"""serve(): the library's credentials on a container-credentials endpoint on 127.0.0.1."""

import http.client
import inspect
import json
import os
import signal
import socket
import stat
import subprocess
import sys
import time

import botocore.credentials
import pytest

import irsa_session
from irsa_session import ConfigError, pod_identity_session
from irsa_session._refresh import windows
from irsa_testing.leaks import assert_clean, secrets_of
from irsa_testing.s3proxy import Objects, S3Proxy


def get(endpoint, path=None, token=None, host=None, method="GET", body=None, headers=None):
    """(status, JSON body) of one request to the endpoint, sent directly."""
    connection = http.client.HTTPConnection("127.0.0.1", endpoint.port, timeout=10)
    sent = dict(headers or {})
    if token is not None:
        sent["Authorization"] = token
    if host is not None:
        sent["Host"] = host
    connection.request(method, path or "/v1/credentials", body=body, headers=sent)
    answer = connection.getresponse()
    data = answer.read()
    connection.close()
    try:
        return answer.status, (json.loads(data.decode()) if data else None)
    except ValueError:  # http.server's own error pages are HTML
        return answer.status, None


def token_of(endpoint):
    with open(endpoint.token_file) as handle:
        return handle.read()


def test_the_signature_is_api_md_s():
    parameters = inspect.signature(irsa_session.serve).parameters
    assert [(p.name, p.kind, p.default) for p in parameters.values()] == [
        ("port", inspect.Parameter.KEYWORD_ONLY, 0),
        ("export", inspect.Parameter.KEYWORD_ONLY, False),
        ("settings", inspect.Parameter.VAR_KEYWORD, inspect.Parameter.empty),
    ]
    assert "serve" in irsa_session.__all__


def test_it_serves_the_library_s_credentials_to_the_token_holder_only(fake_env):
    with irsa_session.serve() as endpoint:
        assert endpoint.url == "http://127.0.0.1:%d/v1/credentials" % endpoint.port
        assert endpoint.environ() == {
            "AWS_CONTAINER_CREDENTIALS_FULL_URI": endpoint.url,
            "AWS_CONTAINER_AUTHORIZATION_TOKEN_FILE": endpoint.token_file,
        }
        assert stat.S_IMODE(os.stat(endpoint.token_file).st_mode) == 0o600
        assert stat.S_IMODE(os.stat(os.path.dirname(endpoint.token_file)).st_mode) == 0o700
        token = token_of(endpoint)
        assert len(token) >= 40
        status, body = get(endpoint, token=token)
        assert status == 200
        issued = fake_env.issued[0]
        assert (body["AccessKeyId"], body["SecretAccessKey"], body["Token"]) == (
            issued["access_key"], issued["secret_key"], issued["session_token"])
        refresher = irsa_session.session.get_credentials()._refresher
        served = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(refresher.expiry - windows(refresher.life)[1]))
        assert body["Expiration"] == served  # the mandatory window's start, before expiry
        for _ in range(5):
            assert get(endpoint, token=token)[0] == 200
        assert fake_env.call_count == 1  # from memory: one STS call for every client
        refused = [
            (get(endpoint), 401),
            (get(endpoint, token=token[:-1] + ("A" if token[-1] != "A" else "B")), 401),
            (get(endpoint, token=token, host="evil.example:%d" % endpoint.port), 403),
            (get(endpoint, token=token, host="127.0.0.1:%d" % (endpoint.port + 1)), 403),
            (get(endpoint, token=token, host="evil.example"), 403),
            (get(endpoint, path="/v1/credentials/", token=token), 404),
            (get(endpoint, path="/", token=token), 404),
            (get(endpoint, token=token, method="POST", body=b"x"), 405),
            (get(endpoint, token=token, headers={"Content-Length": "3"}, body=b"abc"), 400),
        ]
        for (status, body), expected in refused:
            assert status == expected, body
            assert body is None or "AccessKeyId" not in body
    assert not os.path.exists(endpoint.token_file)  # closed: the token is gone
    with pytest.raises(OSError):
        get(endpoint, token=token)


def test_a_host_without_its_port_is_answered_as_the_crt_client_sends_it(fake_env):
    """The CRT (s3torchconnector, Mountpoint) sends ``Host: 127.0.0.1``: no port."""
    with irsa_session.serve() as endpoint:
        for host in ("127.0.0.1", "localhost", "localhost:%d" % endpoint.port):
            status, body = get(endpoint, token=token_of(endpoint), host=host)
            assert (status, body["AccessKeyId"]) == (200, fake_env.issued[0]["access_key"]), host


def test_healthz_says_when_credentials_can_be_served(fake_env):
    with irsa_session.serve() as endpoint:
        assert get(endpoint, path="/healthz") == (200, {"status": "ok"})
        fake_env.set_mode(always_fail=("AccessDenied", None))
    with irsa_session.serve(role_arn="arn:aws:iam::111122223333:role/other") as endpoint:
        status, body = get(endpoint, path="/healthz")
        assert status == 503 and "AccessDenied" in body["message"]


def test_the_library_on_any_botocore_is_a_client_of_it(fake_env, irsa_env):
    """pod_identity_session() fetches from it on every botocore (1.8.50 included)."""
    with irsa_session.serve() as endpoint:
        client = pod_identity_session(full_uri=endpoint.url, token_file=endpoint.token_file)
        frozen = client.get_credentials().get_frozen_credentials()
        assert frozen.access_key == fake_env.issued[0]["access_key"]
        assert fake_env.call_count == 1


@pytest.mark.skipif(
    not hasattr(botocore.credentials, "ContainerProvider")
    or "AWS_CONTAINER_AUTHORIZATION_TOKEN_FILE" not in inspect.getsource(botocore.credentials.ContainerProvider),
    reason="this botocore's container provider reads no token file",
)
def test_plain_boto3_in_another_process_signs_s3_requests_with_its_credentials(fake_env, irsa_env):
    """botocore's own container provider, in a process without the IRSA variables."""
    with Objects() as objects, S3Proxy(objects.base_url, lambda: fake_env.issued) as s3:
        with irsa_session.serve() as endpoint:
            env = dict((k, v) for k, v in os.environ.items() if not k.startswith("AWS_"))
            env.update(endpoint.environ(), AWS_REGION="us-east-1", AWS_EC2_METADATA_DISABLED="true")
            code = (
                "import boto3\n"
                "s3 = boto3.client('s3', endpoint_url=%r)\n"
                "for _ in range(3):\n"
                "    s3.get_object(Bucket='b', Key='k')['Body'].read()\n"
                "print(boto3.Session().get_credentials().method)\n" % s3.url
            )
            for _ in range(2):
                done = subprocess.run([sys.executable, "-c", code], env=env, stdout=subprocess.PIPE,
                                      stderr=subprocess.PIPE, universal_newlines=True, timeout=120)
                assert done.returncode == 0, done.stderr
                assert done.stdout.strip() == "container-role"
        assert [seen.verdict for seen in s3.seen] == ["ok"] * 6
        assert s3.keys() == [fake_env.issued[0]["access_key"]]
    assert fake_env.call_count == 1  # two processes, one STS call


def test_export_points_the_process_at_it_and_close_puts_everything_back(fake_env, irsa_env, monkeypatch):
    monkeypatch.setenv("AWS_CONTAINER_CREDENTIALS_RELATIVE_URI", "/v2/credentials/abc")
    before = dict(os.environ)
    endpoint = irsa_session.serve(export=True)
    try:
        assert os.environ["AWS_CONTAINER_CREDENTIALS_FULL_URI"] == endpoint.url
        assert os.environ["AWS_CONTAINER_AUTHORIZATION_TOKEN_FILE"] == endpoint.token_file
        for moved in ("AWS_ROLE_ARN", "AWS_WEB_IDENTITY_TOKEN_FILE", "AWS_CONTAINER_CREDENTIALS_RELATIVE_URI"):
            assert moved not in os.environ
        assert get(endpoint, token=token_of(endpoint))[0] == 200
    finally:
        endpoint.close()
    assert dict(os.environ) == before


def test_a_chained_role_is_served_with_assume_role(irsa_env, monkeypatch):
    from irsa_testing import ROLE_ARN
    from irsa_testing.chainsts import ChainSTS

    target = "arn:aws:iam::444455556666:role/cross/reader"
    with ChainSTS(trust={target: {"principals": [ROLE_ARN]}}) as sts:
        monkeypatch.setenv("AWS_ENDPOINT_URL_STS", sts.url)
        with irsa_session.serve(assume_role=target) as endpoint:
            body = get(endpoint, token=token_of(endpoint))[1]
        assert sts.key(body["AccessKeyId"])["role_arn"] == target


def test_bad_arguments_and_no_source_are_config_errors(monkeypatch):
    with pytest.raises(ConfigError) as caught:
        irsa_session.serve()
    assert "AWS_ROLE_ARN" in str(caught.value) and "AWS_CONTAINER_CREDENTIALS_FULL_URI" in str(caught.value)
    with pytest.raises(ConfigError) as caught:
        irsa_session.serve(port=-1, role_arn="arn:aws:iam::111122223333:role/x", token_file="/t")
    assert "port" in str(caught.value)


def test_requests_past_its_threads_are_refused_and_big_ones_too(fake_env):
    with irsa_session.serve() as endpoint:
        token = token_of(endpoint)
        idle = []
        try:
            for _ in range(16):  # each holds a thread, sending nothing
                idle.append(socket.create_connection(("127.0.0.1", endpoint.port), timeout=5))
            deadline = time.monotonic() + 10
            while endpoint._slots._value:  # until the endpoint took them all
                assert time.monotonic() < deadline
                time.sleep(0.01)
            with pytest.raises((OSError, http.client.HTTPException)):
                get(endpoint, token=token)
        finally:
            for each in idle:
                each.close()
        deadline = time.monotonic() + 15
        while True:  # the threads come free as their clients go
            try:
                if get(endpoint, token=token)[0] == 200:
                    break
            except (OSError, http.client.HTTPException):
                pass
            assert time.monotonic() < deadline
            time.sleep(0.05)
        assert get(endpoint, path="/" + "x" * 70000, token=token)[0] == 414


def test_nothing_secret_reaches_its_logs(fake_env, capture):
    with irsa_session.serve() as endpoint:
        token = token_of(endpoint)
        for _ in range(3):
            get(endpoint, token=token)
        get(endpoint, token="wrong-token-value-0000000000000000000000")
        text = repr(endpoint) + str(endpoint.environ())
    assert any("serving credentials" in line for line in capture.lines)
    assert_clean(capture.lines + [text], secrets_of(fake_env, tokens=[token]))
    import pickle

    with pytest.raises(TypeError):
        pickle.dumps(endpoint)


def serving(*flags):
    """(the running ``irsa-session serve`` process, the variables its two export lines set)."""
    child = subprocess.Popen(
        [sys.executable, "-m", "irsa_session", "serve"] + list(flags),
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, universal_newlines=True,
    )
    lines = [child.stdout.readline().strip() for _ in range(2)]
    return child, dict(line[len("export "):].split("=", 1) for line in lines if line.startswith("export "))


def test_the_command_serves_until_sigterm(fake_env, irsa_env, tmp_path):
    env_file = tmp_path / "endpoint.env"
    child, variables = serving("--env-file", str(env_file))
    try:
        assert set(variables) == {"AWS_CONTAINER_CREDENTIALS_FULL_URI", "AWS_CONTAINER_AUTHORIZATION_TOKEN_FILE"}
        assert stat.S_IMODE(os.stat(str(env_file)).st_mode) == 0o600
        url = variables["AWS_CONTAINER_CREDENTIALS_FULL_URI"]
        with open(variables["AWS_CONTAINER_AUTHORIZATION_TOKEN_FILE"]) as handle:
            token = handle.read()
        port = int(url.split(":")[2].split("/")[0])
        connection = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
        connection.request("GET", "/v1/credentials", headers={"Authorization": token})
        body = json.loads(connection.getresponse().read().decode())
        assert body["AccessKeyId"] == fake_env.issued[0]["access_key"]
        started = time.monotonic()
        child.send_signal(signal.SIGTERM)
        child.wait(20)
        assert time.monotonic() - started < 5
    finally:
        if child.poll() is None:
            child.kill()
        out, err = child.communicate()
    assert child.returncode == 0, err
    assert not os.path.exists(variables["AWS_CONTAINER_AUTHORIZATION_TOKEN_FILE"])
    assert_clean([out, err], secrets_of(fake_env))


def test_the_command_writes_its_token_to_a_shared_folder_and_replaces_a_stale_one(fake_env, irsa_env, tmp_path):
    """--token-dir: the volume a sidecar shares with the app's container."""
    stale = tmp_path / "token"
    stale.write_text("left by the last start")
    child, variables = serving("--token-dir", str(tmp_path))
    try:
        assert variables["AWS_CONTAINER_AUTHORIZATION_TOKEN_FILE"] == str(stale)
        token = stale.read_text()
        assert token != "left by the last start" and len(token) >= 40
        assert stat.S_IMODE(os.stat(str(stale)).st_mode) == 0o600
        assert os.listdir(str(tmp_path)) == ["token"]
    finally:
        child.send_signal(signal.SIGTERM)
        out, err = child.communicate(timeout=20)
    assert child.returncode == 0, err
    assert os.listdir(str(tmp_path)) == []  # the token went; the shared folder stays

    missing = str(tmp_path / "no-such-folder")
    done = subprocess.run([sys.executable, "-m", "irsa_session", "serve", "--token-dir", missing],
                          stdout=subprocess.PIPE, stderr=subprocess.PIPE, universal_newlines=True, timeout=60)
    assert done.returncode == 1 and done.stdout == ""
    assert missing in done.stderr and "not a directory" in done.stderr
