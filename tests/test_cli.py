"""cli: every subcommand run as a real child process (``python -m irsa_session``),
against the fault-injecting STS on loopback (and moto's server for one doctor run).

Children inherit PYTHONPATH and run in a temporary directory, so they import
irsa_session the way the row does (installed, or the vendored copy), never the
repo's folder through the working directory.
"""

import email.utils
import json
import os
import shutil
import subprocess
import sys
import sysconfig
import time

import botocore.utils
import pytest

from irsa_testing import ISSUER, ROLE_ARN, SUBJECT
from irsa_testing import sigv4
from irsa_testing.tokens import make_token

TIMEOUT = 120  # seconds for any one child; the longest path is one exchange without retries
HOST = ISSUER[len("https://"):]
CHECKS = [
    "credential-sources",
    "botocore",
    "token-file",
    "token-claims",
    "role-arn",
    "sts-endpoint",
    "exchange",
    "caller-identity",
    "clock-skew",
]


class Result(object):
    def __init__(self, completed):
        self.code = completed.returncode
        self.stdout = completed.stdout
        self.stderr = completed.stderr

    @property
    def text(self):
        return self.stdout + self.stderr

    def json(self):
        return json.loads(self.stdout)

    def finding(self, check):
        found = [item for item in self.json()["findings"] if item["check"] == check]
        assert len(found) == 1, self.stdout
        return found[0]


@pytest.fixture
def cli(tmp_path):
    """Run ``python -m irsa_session ARGS`` in a child; env defaults to this process's."""
    workdir = tmp_path / "cwd"
    workdir.mkdir()

    def run(*args, env=None, prefix=(), extra=None):
        child_env = dict(os.environ if env is None else env)
        child_env.update(extra or {})
        completed = subprocess.run(
            list(prefix) + [sys.executable, "-m", "irsa_session"] + list(args),
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            universal_newlines=True,
            env=child_env,
            cwd=str(workdir),
            timeout=TIMEOUT,
        )
        return Result(completed)

    return run


@pytest.fixture
def web_token(fake_env, token_file):
    with open(token_file) as handle:
        return handle.read().strip()


def write_token(tmp_path, text, name="token"):
    path = tmp_path / name
    path.write_text(text + "\n")
    return str(path)


def iso(epoch):
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(epoch))


def assert_no_secrets(result, fake_sts, *tokens):
    """No issued secret key or session token, and no token (nor its signature), in the output."""
    text = result.text
    for issued in fake_sts.issued:
        assert issued["secret_key"] not in text
        assert issued["session_token"] not in text
    for web_token in tokens:
        assert web_token not in text
        assert web_token.split(".")[-1] not in text


# -- doctor ------------------------------------------------------------------------


def test_doctor_all_good(cli, fake_env, web_token):
    result = cli("doctor")
    assert result.code == 0, result.text
    issued = fake_env.issued
    assert len(issued) == 1
    assert [call["action"] for call in fake_env.calls] == [
        "AssumeRoleWithWebIdentity",
        "GetCallerIdentity",
    ]
    # GetCallerIdentity was signed with the credentials the exchange returned.
    assert "Credential=%s/" % issued[0]["access_key"] in fake_env.calls[1]["headers"]["Authorization"]
    assert "arn:aws:sts::111122223333:assumed-role/data-reader/" in result.stdout
    assert iso(issued[0]["expiration"]) in result.stdout
    assert issued[0]["access_key"] in result.stdout  # the access key id is not a secret
    assert "[ok]       exchange:" in result.stdout
    assert "[fail]" not in result.stdout
    assert "sub: %s (namespace team-a, service account default-editor)" % SUBJECT in result.stdout
    assert "OK: IRSA works in this process." in result.stdout
    assert_no_secrets(result, fake_env, web_token)


def test_doctor_json(cli, fake_env, web_token, token_file):
    result = cli("doctor", "--json")
    assert result.code == 0, result.text
    report = result.json()
    assert report["ok"] is True
    assert [item["check"] for item in report["findings"]] == CHECKS
    for item in report["findings"]:
        assert set(item) >= {"check", "status", "detail", "fix"}
        assert item["status"] in ("ok", "info"), item
    issued = fake_env.issued[0]
    assert result.finding("exchange")["access_key_id"] == issued["access_key"]
    assert result.finding("exchange")["expiration"] == iso(issued["expiration"])
    assert result.finding("caller-identity")["arn"].startswith(
        "arn:aws:sts::111122223333:assumed-role/data-reader/"
    )
    claims = result.finding("token-claims")
    assert (claims["iss"], claims["sub"], claims["aud"]) == (ISSUER, SUBJECT, ["sts.amazonaws.com"])
    assert (claims["namespace"], claims["service_account"]) == ("team-a", "default-editor")
    assert result.finding("token-file")["path"] == token_file
    assert result.finding("role-arn")["account"] == "111122223333"
    endpoint = result.finding("sts-endpoint")
    assert (endpoint["url"], endpoint["reason"]) == (fake_env.url, "AWS_ENDPOINT_URL_STS")
    assert abs(result.finding("clock-skew")["skew_seconds"]) < 5
    sources = result.finding("credential-sources")
    assert sources["present"] == ["irsa"] and sources["irsa_session_uses"] == "irsa"
    assert result.stderr == ""
    assert_no_secrets(result, fake_env, web_token)


def test_doctor_against_moto(cli, moto, token_file):
    result = cli("doctor")
    assert result.code == 0, result.text
    assert "assumed-role/data-reader/" in result.stdout
    assert "OK: IRSA works in this process." in result.stdout
    with open(token_file) as handle:
        assert handle.read().strip() not in result.text


def test_doctor_wrong_audience_fails_without_calling_sts(cli, fake_env, tmp_path):
    bad = make_token(aud=["something-else"])
    env = dict(os.environ, AWS_WEB_IDENTITY_TOKEN_FILE=write_token(tmp_path, bad, "bad-aud"))
    result = cli("doctor", "--json", env=env)
    assert result.code == 1, result.text
    assert result.json()["ok"] is False
    claims = result.finding("token-claims")
    assert claims["status"] == "fail"
    assert claims["aud"] == ["something-else"]
    assert "sts.amazonaws.com" in claims["fix"]
    assert result.finding("exchange")["status"] == "skipped"
    assert fake_env.call_count == 0
    text = cli("doctor", env=env)
    assert text.code == 1
    assert "[fail]     token-claims:" in text.stdout
    assert "aud: something-else" in text.stdout
    assert_no_secrets(result, fake_env, bad)
    assert_no_secrets(text, fake_env, bad)


def test_doctor_access_denied_prints_the_trust_policy(cli, fake_env, web_token):
    fake_env.set_mode(always_fail=("AccessDenied", 403))
    result = cli("doctor")
    assert result.code == 1, result.text
    assert fake_env.call_count == 1  # AccessDenied is not retried
    out = result.stdout
    assert "[fail]     exchange:" in out and "AccessDenied" in out
    assert '"Federated": "arn:aws:iam::111122223333:oidc-provider/%s"' % HOST in out
    assert '"%s:sub": [' % HOST in out
    assert '"%s"' % SUBJECT in out
    assert '"%s:aud": "sts.amazonaws.com"' % HOST in out
    assert_no_secrets(result, fake_env, web_token)

    report = cli("doctor", "--json")
    assert report.code == 1
    assert report.finding("exchange")["code"] == "AccessDenied"
    assert report.finding("trust-policy")["statement"] == {
        "Effect": "Allow",
        "Principal": {"Federated": "arn:aws:iam::111122223333:oidc-provider/%s" % HOST},
        "Action": "sts:AssumeRoleWithWebIdentity",
        "Condition": {
            "StringEquals": {"%s:aud" % HOST: "sts.amazonaws.com", "%s:sub" % HOST: [SUBJECT]}
        },
    }
    assert_no_secrets(report, fake_env, web_token)


def test_doctor_token_path_is_a_directory(cli, fake_env, tmp_path):
    directory = tmp_path / "serviceaccount"
    directory.mkdir()
    result = cli("doctor", "--json", extra={"AWS_WEB_IDENTITY_TOKEN_FILE": str(directory)})
    assert result.code == 1, result.text
    found = result.finding("token-file")
    assert found["status"] == "fail"
    assert "is a directory" in found["detail"]
    assert "inside the directory" in found["fix"]
    assert result.finding("exchange")["status"] == "skipped"
    assert fake_env.call_count == 0


def _refused_prefix(path):
    """A command prefix under which this user cannot read the mode-000 ``path``; None if none.

    root reads any file, so as root the child runs under setpriv without the
    capabilities that bypass file permissions (a setuid child cannot even start
    pyenv's Python, which lives under /root).
    """
    if os.getuid() != 0:
        return []
    setpriv = shutil.which("setpriv")
    if setpriv is None:
        return None
    prefix = [setpriv, "--bounding-set", "-dac_override,-dac_read_search", "--"]
    probe = subprocess.run(
        prefix + [sys.executable, "-c", "open(%r).read()" % path],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        universal_newlines=True,
        timeout=TIMEOUT,
    )
    return prefix if "PermissionError" in probe.stderr else None


def test_doctor_token_unreadable_names_fsgroup(cli, fake_env, token_file, web_token):
    os.chmod(token_file, 0)
    prefix = _refused_prefix(token_file)
    if prefix is None:
        pytest.skip("running as root without setpriv: cannot make a file unreadable")
    result = cli("doctor", prefix=prefix)
    assert result.code == 1, result.text
    out = result.stdout
    assert "[fail]     token-file:" in out
    assert "is not readable by this user (uid %d)" % os.getuid() in out
    assert "securityContext.fsGroup" in out
    assert "mode 0000, owner uid %d" % os.getuid() in out
    assert "this process runs as uid %d, gid %d" % (os.getuid(), os.getgid()) in out
    assert fake_env.call_count == 0
    assert_no_secrets(result, fake_env, web_token)


def test_doctor_missing_variables(cli):
    result = cli("doctor")
    assert result.code == 1, result.text
    assert "AWS_ROLE_ARN and AWS_WEB_IDENTITY_TOKEN_FILE are unset" in result.stdout
    assert "eks.amazonaws.com/role-arn" in result.stdout
    report = cli("doctor", "--json")
    assert report.code == 1
    sources = report.finding("credential-sources")
    assert sources["status"] == "fail"
    assert sources["missing"] == ["AWS_ROLE_ARN", "AWS_WEB_IDENTITY_TOKEN_FILE"]
    assert report.finding("exchange")["status"] == "skipped"


def test_doctor_expired_token_fails_before_sts(cli, fake_env, tmp_path):
    stale = make_token(exp_in=-600)
    env = dict(os.environ, AWS_WEB_IDENTITY_TOKEN_FILE=write_token(tmp_path, stale, "stale"))
    result = cli("doctor", env=env)
    assert result.code == 1, result.text
    assert "the kubelet should have rotated it" in result.stdout
    assert "[fail]     token-claims:" in result.stdout
    assert "[skipped]  exchange:" in result.stdout
    assert fake_env.call_count == 0
    assert_no_secrets(result, fake_env, stale)


def test_doctor_not_a_jwt(cli, fake_env, tmp_path):
    opaque = "not-a-jwt-but-a-long-opaque-secret-value"
    result = cli("doctor", "--json", extra={"AWS_WEB_IDENTITY_TOKEN_FILE": write_token(tmp_path, opaque)})
    assert result.code == 1
    assert "not a JWT" in result.finding("token-claims")["detail"]
    assert fake_env.call_count == 0
    assert opaque not in result.text


def test_doctor_static_keys_warn_but_irsa_still_works(cli, fake_env, web_token):
    secret = "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY"
    result = cli(
        "doctor", "--json",
        extra={"AWS_ACCESS_KEY_ID": "AKIAIOSFODNN7EXAMPLE", "AWS_SECRET_ACCESS_KEY": secret},
    )
    assert result.code == 0, result.text
    sources = result.finding("credential-sources")
    assert sources["status"] == "warn"
    assert "in botocore's own chain they win over IRSA, but irsa_session's session ignores them" in sources["detail"]
    assert "AKIAIOSFODNN7EXAMPLE" in sources["botocore_chain_uses"]
    assert "AKIAIOSFODNN7EXAMPLE" in sources["installed_chain_uses"]  # install() keeps them first
    assert "after irsa_session.install(), plain boto3" in sources["detail"]
    assert result.finding("exchange")["status"] == "ok"
    assert secret not in result.text
    assert_no_secrets(result, fake_env, web_token)


def test_doctor_role_arn_malformed(cli, fake_env):
    result = cli("doctor", "--json", "--role-arn", "arn:aws:iam::111122223333:user/alice")
    assert result.code == 1
    found = result.finding("role-arn")
    assert found["status"] == "fail"
    assert "is not an IAM role ARN" in found["detail"]
    assert fake_env.call_count == 0


@pytest.mark.parametrize(
    "variables, status, url, reason",
    [
        ({}, "warn", "https://sts.amazonaws.com", "no-region"),
        ({"AWS_REGION": "eu-west-1"}, "ok", "https://sts.eu-west-1.amazonaws.com", "regional"),
        ({"AWS_DEFAULT_REGION": "cn-north-1"}, "ok", "https://sts.cn-north-1.amazonaws.com.cn", "regional"),
        # Like no region botocore knows: a warning (it may be newer than botocore), not a failure.
        ({"AWS_REGION": "mars-north-9"}, "warn", "https://sts.mars-north-9.amazonaws.com", "unknown-region"),
        (
            {"AWS_REGION": "us-east-1", "AWS_STS_REGIONAL_ENDPOINTS": "legacy"},
            "ok", "https://sts.amazonaws.com", "legacy",
        ),
        ({"AWS_ENDPOINT_URL": "http://127.0.0.1:9/"}, "ok", "http://127.0.0.1:9", "AWS_ENDPOINT_URL"),
    ],
)
def test_doctor_explains_the_endpoint(cli, tmp_path, variables, status, url, reason):
    # No token file, so no exchange: nothing leaves this machine.
    env = dict(os.environ, AWS_ROLE_ARN=ROLE_ARN, AWS_WEB_IDENTITY_TOKEN_FILE=str(tmp_path / "absent"))
    env.update(variables)
    result = cli("doctor", "--json", env=env)
    assert result.code == 1  # the token file is missing
    assert "does not exist" in result.finding("token-file")["detail"]
    found = result.finding("sts-endpoint")
    assert (found["status"], found["url"], found["reason"]) == (status, url, reason)


def test_doctor_help_lists_every_option(cli):
    result = cli("doctor", "--help")
    assert result.code == 0
    for option in ("--role-arn", "--token-file", "--region", "--sts-endpoint-url", "--json"):
        assert option in result.stdout


def test_clock_skew_thresholds():
    from irsa_session import cli

    now = time.time()
    date = email.utils.formatdate(now, usegmt=True)
    assert cli._skew(date, now + 30)["status"] == "ok"
    assert cli._skew(date, now + 120)["status"] == "warn"
    late = cli._skew(date, now - 400)
    assert late["status"] == "fail" and "behind" in late["detail"] and late["fix"]
    assert cli._skew(None, now)["status"] == "skipped"


# -- usage errors --------------------------------------------------------------------


@pytest.mark.parametrize("command", ["doctor", "credential-process", "env", "trust-policy"])
def test_the_options_each_command_takes_are_as_the_readme_says(cli, command):
    # README "Command line": three commands take the settings; trust-policy takes
    # --account and --partition instead, and --role-arn is a usage error there.
    shown = cli(command, "--help").stdout
    settings = ("--role-arn", "--token-file", "--region", "--sts-endpoint-url")
    if command == "trust-policy":
        assert "--account" in shown and "--partition" in shown
        assert not any(option in shown for option in settings), shown
        assert cli(command, "--role-arn", ROLE_ARN).code == 2
    else:
        assert all(option in shown for option in settings), shown


@pytest.mark.parametrize(
    "args",
    [
        [],
        ["frobnicate"],
        ["doctor", "--no-such-option"],
        ["env", "--format", "yaml"],
        ["trust-policy", "--issuer", ISSUER, "--account", "111122223333",
         "--namespace", "a", "--namespace", "b", "--service-account", "x"],
        ["trust-policy", "--issuer", ISSUER, "--account", "111122223333"],
        ["trust-policy", "--issuer", ISSUER, "--account", "1234",
         "--namespace", "a", "--service-account", "x"],
        ["trust-policy", "--account", "111122223333", "--namespace", "a", "--service-account", "x"],
    ],
)
def test_usage_errors_exit_2(cli, args):
    result = cli(*args)
    assert result.code == 2, result.text
    assert result.stdout == ""
    assert "usage:" in result.stderr


# -- credential-process and env ----------------------------------------------------


def test_credential_process_prints_the_issued_credentials(cli, fake_env, web_token):
    result = cli("credential-process")
    assert result.code == 0, result.text
    document = result.json()
    issued = fake_env.issued
    assert len(issued) == 1
    assert document == {
        "Version": 1,
        "AccessKeyId": issued[0]["access_key"],
        "SecretAccessKey": issued[0]["secret_key"],
        "SessionToken": issued[0]["session_token"],
        "Expiration": iso(issued[0]["expiration"]),
    }
    assert list(document) == ["Version", "AccessKeyId", "SecretAccessKey", "SessionToken", "Expiration"]
    assert result.stderr == ""
    assert web_token not in result.text


def test_credential_process_overrides(cli, fake_sts, token_file, tmp_path):
    # Nothing in the environment: every setting from the command line.
    result = cli(
        "credential-process", "--role-arn", ROLE_ARN, "--token-file", token_file,
        "--region", "us-west-2", "--sts-endpoint-url", fake_sts.url,
    )
    assert result.code == 0, result.text
    assert result.json()["AccessKeyId"] == fake_sts.issued[0]["access_key"]
    assert fake_sts.calls[0]["params"]["RoleArn"] == ROLE_ARN


def test_credential_process_error_goes_to_stderr(cli, fake_env, web_token):
    fake_env.set_mode(always_fail=("AccessDenied", 403))
    result = cli("credential-process")
    assert result.code == 1
    assert result.stdout == ""
    assert "STS denied AssumeRoleWithWebIdentity for role %s" % ROLE_ARN in result.stderr
    assert "Traceback" not in result.stderr
    assert web_token not in result.text


def test_credential_process_unconfigured(cli):
    result = cli("credential-process")
    assert result.code == 1
    assert result.stdout == ""
    assert "AWS_ROLE_ARN and AWS_WEB_IDENTITY_TOKEN_FILE are unset" in result.stderr


def _issued_triple(fake_sts):
    issued = fake_sts.issued[-1]
    return [issued["access_key"], issued["secret_key"], issued["session_token"]]


def test_env_shell_is_evaluable(cli, fake_env):
    result = cli("env")
    assert result.code == 0, result.text
    lines = result.stdout.splitlines()
    assert [line.split("=", 1)[0] for line in lines] == [
        "export AWS_ACCESS_KEY_ID",
        "export AWS_SECRET_ACCESS_KEY",
        "export AWS_SESSION_TOKEN",
    ]
    script = 'set -e; %s; printf "%%s\\n" "$AWS_ACCESS_KEY_ID" "$AWS_SECRET_ACCESS_KEY" "$AWS_SESSION_TOKEN"' % (
        result.stdout.strip()
    )
    shell = subprocess.run(
        ["bash", "-c", script], stdout=subprocess.PIPE, universal_newlines=True,
        env={"PATH": os.environ.get("PATH", "/usr/bin:/bin")}, timeout=TIMEOUT, check=True,
    )
    assert shell.stdout.splitlines() == _issued_triple(fake_env)
    expiry = iso(fake_env.issued[-1]["expiration"])
    assert "do not refresh" in result.stderr and expiry in result.stderr


def test_env_dotenv(cli, fake_env):
    result = cli("env", "--format", "dotenv")
    assert result.code == 0, result.text
    pairs = [line.split("=", 1) for line in result.stdout.splitlines()]
    assert [name for name, _ in pairs] == ["AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN"]
    assert [value for _, value in pairs] == ['"%s"' % value for value in _issued_triple(fake_env)]
    assert "do not refresh" in result.stderr


def test_env_refuses_values_that_would_inject_a_line(cli, fake_env):
    fake_env.odd_values_next(1, secret_key="wJalrXUtnFEMI/K7MDENG\nAWS_PROFILE=evil")
    result = cli("env", "--format", "dotenv")
    assert result.code == 1 and result.stdout == ""
    assert "refusing credentials" in result.stderr and "AWS_PROFILE=evil" not in result.stderr


def test_doctor_token_path_is_a_fifo_fails_within_a_second(cli, fake_env, tmp_path):
    path = str(tmp_path / "fifo")
    os.mkfifo(path)
    started = time.monotonic()
    result = cli("doctor", "--json", "--token-file", path)
    assert time.monotonic() - started < 5  # the child's start-up included; the read itself is instant
    assert result.code == 1
    found = result.finding("token-file")
    assert found["status"] == "fail" and "is a FIFO (named pipe), not a regular file" in found["detail"]
    assert fake_env.call_count == 0


@pytest.mark.parametrize(
    "url, says",
    [
        ("http://sts.example.com", "plain http to 'sts.example.com'"),
        ("https://sts.amazonaws.com@evil.example", "user info"),
    ],
)
def test_doctor_flags_endpoints_that_would_leak_the_token(cli, tmp_path, url, says):
    env = dict(os.environ, AWS_ROLE_ARN=ROLE_ARN, AWS_WEB_IDENTITY_TOKEN_FILE=str(tmp_path / "absent"))
    env["AWS_ENDPOINT_URL_STS"] = url
    result = cli("doctor", "--json", env=env)
    assert result.code == 1
    found = result.finding("sts-endpoint")
    assert found["status"] == "fail" and says in found["detail"] and "AWS_ENDPOINT_URL_STS" in found["detail"]


def test_doctor_says_configured_endpoints_are_ignored(cli, tmp_path):
    env = dict(os.environ, AWS_ROLE_ARN=ROLE_ARN, AWS_WEB_IDENTITY_TOKEN_FILE=str(tmp_path / "absent"))
    env.update(AWS_ENDPOINT_URL_STS="http://127.0.0.1:9", AWS_IGNORE_CONFIGURED_ENDPOINT_URLS="true", AWS_REGION="eu-west-1")
    found = cli("doctor", "--json", env=env).finding("sts-endpoint")
    assert (found["status"], found["url"], found["reason"]) == ("ok", "https://sts.eu-west-1.amazonaws.com", "ignored")
    assert "AWS_ENDPOINT_URL_STS is ignored" in found["detail"]


def test_env_json(cli, fake_env):
    result = cli("env", "--format", "json")
    assert result.code == 0, result.text
    values = _issued_triple(fake_env)
    assert result.json() == dict(zip(["AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN"], values))


def test_env_error(cli, fake_env):
    fake_env.set_mode(always_fail=("AccessDenied", 403))
    result = cli("env")
    assert result.code == 1 and result.stdout == ""
    assert "STS denied" in result.stderr


# -- trust-policy ---------------------------------------------------------------------


def test_trust_policy_from_issuer(cli):
    result = cli(
        "trust-policy", "--issuer", ISSUER + "/", "--account", "111122223333",
        "--namespace", "team-a", "--service-account", "default-editor",
    )
    assert result.code == 0, result.text
    assert result.json() == {
        "Version": "2012-10-17",
        "Statement": [
            {
                "Effect": "Allow",
                "Principal": {"Federated": "arn:aws:iam::111122223333:oidc-provider/%s" % HOST},
                "Action": "sts:AssumeRoleWithWebIdentity",
                "Condition": {
                    "StringEquals": {
                        "%s:aud" % HOST: "sts.amazonaws.com",
                        "%s:sub" % HOST: ["system:serviceaccount:team-a:default-editor"],
                    }
                },
            }
        ],
    }
    assert result.stdout.startswith('{\n  "Version": "2012-10-17",')  # indent 2


def test_trust_policy_from_token_two_pairs_account_from_role(cli, tmp_path):
    issuer = "https://oidc.eks.us-gov-west-1.amazonaws.com/id/0123456789ABCDEF"
    path = write_token(tmp_path, make_token(iss=issuer))
    host = issuer[len("https://"):]
    result = cli(
        "trust-policy", "--from-token", path,
        "--namespace", "user-a", "--service-account", "default-editor",
        "--namespace", "user-b", "--service-account", "default-editor",
        extra={"AWS_ROLE_ARN": "arn:aws-us-gov:iam::210987654321:role/kf-user"},
    )
    assert result.code == 0, result.text
    assert result.json() == {
        "Version": "2012-10-17",
        "Statement": [
            {
                "Effect": "Allow",
                "Principal": {"Federated": "arn:aws-us-gov:iam::210987654321:oidc-provider/%s" % host},
                "Action": "sts:AssumeRoleWithWebIdentity",
                "Condition": {
                    "StringEquals": {
                        "%s:aud" % host: "sts.amazonaws.com",
                        "%s:sub" % host: [
                            "system:serviceaccount:user-a:default-editor",
                            "system:serviceaccount:user-b:default-editor",
                        ],
                    }
                },
            }
        ],
    }


def test_trust_policy_needs_an_account(cli):
    result = cli("trust-policy", "--issuer", ISSUER, "--namespace", "a", "--service-account", "x")
    assert result.code == 2
    assert result.stdout == ""
    assert "--account" in result.stderr and "AWS_ROLE_ARN is unset" in result.stderr


def test_trust_policy_unreadable_token_fails(cli, tmp_path):
    result = cli(
        "trust-policy", "--from-token", str(tmp_path / "absent"), "--account", "111122223333",
        "--namespace", "a", "--service-account", "x",
    )
    assert result.code == 1
    assert result.stdout == ""
    assert "does not exist" in result.stderr


# -- the console script -----------------------------------------------------------------


def _installed():
    """Whether irsa_session is imported from this interpreter's site-packages."""
    import irsa_session

    where = os.path.realpath(irsa_session.__file__)
    paths = sysconfig.get_paths()
    return any(
        where.startswith(os.path.realpath(paths[name]) + os.sep) for name in ("purelib", "platlib")
    )


def test_console_script_is_python_m(cli, tmp_path):
    if os.environ.get("IRSA_TEST_VENDORED"):
        pytest.skip("the vendored row copies irsa_session/ onto PYTHONPATH: no script is installed")
    script = os.path.join(os.path.dirname(sys.executable), "irsa-session")
    if not os.path.exists(script) and not _installed():
        pytest.skip("irsa_session is imported from a source tree, not installed: no script")
    assert os.access(script, os.X_OK), "%s is not installed" % script
    completed = subprocess.run(
        [script, "--help"], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
        universal_newlines=True, cwd=str(tmp_path), timeout=TIMEOUT,
    )
    assert completed.returncode == 0, completed.stderr
    for command in ("doctor", "credential-process", "env", "trust-policy"):
        assert command in completed.stdout
    assert completed.stdout == cli("--help").stdout
    usage = subprocess.run(
        [script, "frobnicate"], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
        universal_newlines=True, cwd=str(tmp_path), timeout=TIMEOUT,
    )
    assert usage.returncode == 2


def test_doctor_missing_profile_fails_without_a_traceback(cli, fake_env, web_token):
    result = cli("doctor", "--json", extra={"AWS_PROFILE": "no-such-profile"})
    assert result.code == 1, result.text
    sources = result.finding("credential-sources")
    assert sources["status"] == "fail"
    assert "no-such-profile" in sources["detail"] and "ProfileNotFound" in sources["detail"]
    assert "AWS_PROFILE" in sources["fix"]
    assert "Traceback" not in result.stderr
    assert_no_secrets(result, fake_env, web_token)


def test_doctor_names_pod_identity(cli, fake_env):
    result = cli(
        "doctor", "--json",
        extra={
            "AWS_CONTAINER_CREDENTIALS_FULL_URI": "http://169.254.170.23/v1/credentials",
            "AWS_CONTAINER_AUTHORIZATION_TOKEN_FILE": "/var/run/secrets/pods.eks.amazonaws.com/"
            "serviceaccount/eks-pod-identity-token",
        },
    )
    assert result.code == 0, result.text
    sources = result.finding("credential-sources")
    assert sources["present"] == ["irsa", "pod-identity"]
    assert "EKS Pod Identity: AWS_CONTAINER_CREDENTIALS_FULL_URI=" in sources["detail"]
    assert sources["irsa_session_uses"] == "irsa"


def test_doctor_says_what_install_gives_unchanged_code(cli, fake_env, web_token, tmp_path):
    sources = cli("doctor", "--json").finding("credential-sources")
    assert sources["installed_chain_uses"] == "IRSA, through irsa_session's provider"
    chain = sources["installed_chain"]
    assert chain.index("irsa-session") < chain.index("container-role") < chain.index("iam-role")
    (tmp_path / "credentials").write_text(
        "[team]\naws_access_key_id = AKIAPROFILEKEY000001\naws_secret_access_key = x\n"
    )
    (tmp_path / "config").write_text("[profile team]\n")
    files = {
        "AWS_SHARED_CREDENTIALS_FILE": str(tmp_path / "credentials"),
        "AWS_CONFIG_FILE": str(tmp_path / "config"),
        "AWS_PROFILE": "team",
    }
    sources = cli("doctor", "--json", extra=files).finding("credential-sources")
    assert sources["installed_chain_uses"] == "the profile's keys in the shared credentials file"


def test_doctor_catches_a_mistyped_region_before_any_retry(cli, fake_env, web_token):
    env = dict(os.environ)
    env.pop("AWS_ENDPOINT_URL_STS")  # the region picks the endpoint
    env["AWS_REGION"] = "us-wset-2"
    started = time.monotonic()
    result = cli("doctor", "--json", env=env)
    assert time.monotonic() - started < 30
    assert result.code == 1
    found = result.finding("sts-endpoint")
    assert found["status"] == "fail" and found["reason"] == "unknown-region"
    assert "did you mean us-west-2?" in found["detail"] and "AWS_REGION" in found["fix"]
    assert result.finding("exchange")["status"] == "skipped"


@pytest.mark.parametrize("command", ["credential-process", "env"])
@pytest.mark.parametrize("given", ["AWS_REGION", "--region"])
def test_the_credential_commands_catch_a_mistyped_region_at_once_too(cli, fake_env, web_token, command, given):
    """Issue 26: they used to retry an STS endpoint that does not exist for 11-13 s."""
    env = dict(os.environ)
    env.pop("AWS_ENDPOINT_URL_STS")  # the region picks the endpoint
    flags = ["--region", "us-wset-2"] if given == "--region" else []
    if given == "AWS_REGION":
        env["AWS_REGION"] = "us-wset-2"
    started = time.monotonic()
    result = cli(command, *flags, env=env)
    assert time.monotonic() - started < 5
    assert result.code == 1 and result.stdout == ""
    assert "did you mean us-west-2?" in result.stderr
    assert ("Set --region to us-west-2" if given == "--region" else "Set AWS_REGION (or --region) to us-west-2") in result.stderr
    assert fake_env.call_count == 0


def test_doctor_names_the_file_beside_a_mistyped_token_path(cli, fake_env, token_file):
    mistyped = os.path.join(os.path.dirname(token_file), "tokne")
    result = cli("doctor", "--json", "--token-file", mistyped)
    assert result.code == 1
    found = result.finding("token-file")
    assert found["status"] == "fail" and "does not exist" in found["detail"]
    assert token_file in found["fix"] and "annotation" not in found["fix"]


def test_doctor_prints_each_finding_as_it_is_found(fake_env, web_token, tmp_path):
    fake_env.set_mode(delay=4.0)  # STS answers slowly: the first findings come before it
    child = subprocess.Popen(
        [sys.executable, "-m", "irsa_session", "doctor"], stdout=subprocess.PIPE,
        stderr=subprocess.PIPE, universal_newlines=True, cwd=str(tmp_path),
    )
    try:
        started = time.monotonic()
        seen = ""
        while "sts-endpoint" not in seen and time.monotonic() - started < 20:
            seen += child.stdout.readline()
        shown_after = time.monotonic() - started
        assert "[ok]       token-file" in seen and child.poll() is None
        out, _ = child.communicate(timeout=60)
    finally:
        if child.poll() is None:
            child.kill()
    assert "exchange" in out and child.returncode == 0
    assert shown_after < time.monotonic() - started - 1  # well before the end


# -- EKS Pod Identity (issue 12) -----------------------------------------------------


POD_SESSION_ARN = "arn:aws:sts::111122223333:assumed-role/kf-team-a-pod/eks-cluster-nb-7"


@pytest.fixture
def pod_identity(tmp_path, fake_sts):
    """A fake agent on loopback and the variables EKS sets for it (IRSA unset); the fake
    STS (``agent.sts``) takes the agent's keys, as AWS does."""
    from irsa_testing.agent import FakeAgent

    path = tmp_path / "eks-pod-identity-token"
    path.write_text(make_token(sub="system:serviceaccount:team-a:default-editor", aud=["pods.eks.amazonaws.com"]))
    with FakeAgent(expect_token=lambda: path.read_text().strip()) as agent:
        fake_sts.accept_keys_of(agent, POD_SESSION_ARN)
        env = dict((k, v) for k, v in os.environ.items() if k not in ("AWS_ROLE_ARN", "AWS_WEB_IDENTITY_TOKEN_FILE"))
        env.update(
            AWS_CONTAINER_CREDENTIALS_FULL_URI=agent.url,
            AWS_CONTAINER_AUTHORIZATION_TOKEN_FILE=str(path),
            AWS_REGION="us-west-2",
            AWS_ENDPOINT_URL_STS=fake_sts.url,
        )
        agent.env = env
        agent.token_path = str(path)
        agent.sts = fake_sts
        yield agent


def test_doctor_checks_the_pod_identity_agent_end_to_end(cli, pod_identity):
    result = cli("doctor", "--json", env=pod_identity.env)
    assert result.code == 0, result.text
    sources = result.finding("credential-sources")
    assert sources["status"] == "ok" and sources["irsa_session_uses"] == "pod-identity"
    assert sources["installed_chain_uses"] == "EKS Pod Identity, through irsa_session's provider"
    assert result.finding("pod-identity-token")["status"] == "ok"
    found = result.finding("pod-identity-agent")
    assert found["status"] == "ok" and found["access_key_id"] == pod_identity.issued[-1]["access_key"]
    assert pod_identity.call_count == 1
    for issued in pod_identity.issued:
        assert issued["secret_key"] not in result.text and issued["session_token"] not in result.text
    assert open(pod_identity.token_path).read().strip() not in result.text


def test_doctor_ends_a_pod_identity_check_with_a_signed_call_and_says_pod_identity(cli, pod_identity):
    fake_sts = pod_identity.sts
    result = cli("doctor", "--json", env=pod_identity.env)
    assert result.code == 0, result.text
    found = result.finding("caller-identity")
    assert found["status"] == "ok" and found["arn"] == POD_SESSION_ARN
    assert [call["action"] for call in fake_sts.calls] == ["GetCallerIdentity"]
    assert fake_sts.calls[0]["answered"] == "ok"  # signed by the agent's key: the fake checks
    assert sigv4.signer(fake_sts.calls[0]["headers"]) == pod_identity.issued[-1]["access_key"]
    text = cli("doctor", env=pod_identity.env).text
    assert "OK: EKS Pod Identity works in this process." in text and "IRSA works" not in text


def test_doctor_masks_a_password_in_the_agent_url(cli, pod_identity):
    env = dict(pod_identity.env)
    env["AWS_CONTAINER_CREDENTIALS_FULL_URI"] = pod_identity.url.replace("http://", "http://pod:pass-w0rd@")
    for result in (cli("doctor", "--json", env=env), cli("doctor", env=env)):
        assert result.code == 1
        assert "pass-w0rd" not in result.text and "pod:****@" in result.text
    assert pod_identity.calls == []


def test_doctor_explains_a_refused_pod_identity_token(cli, pod_identity):
    pod_identity.expect_token = lambda: "some other token"
    result = cli("doctor", "--json", env=pod_identity.env)
    assert result.code == 1
    found = result.finding("pod-identity-agent")
    assert found["status"] == "fail" and "HTTP 403" in found["detail"]
    assert "Pod Identity association" in found["detail"] and "team-a:default-editor" in found["detail"]


def test_doctor_refuses_a_pod_identity_url_on_another_host(cli, pod_identity):
    env = dict(pod_identity.env, AWS_CONTAINER_CREDENTIALS_FULL_URI="http://10.1.2.3/v1/credentials")
    result = cli("doctor", "--json", env=env)
    assert result.code == 1
    found = result.finding("pod-identity")
    assert found["status"] == "fail" and "plain http to '10.1.2.3'" in found["detail"]
    assert pod_identity.call_count == 0


def test_credential_process_and_env_serve_pod_identity(cli, pod_identity):
    result = cli("credential-process", env=pod_identity.env)
    assert result.code == 0, result.text
    document = result.json()
    assert document["AccessKeyId"] == pod_identity.issued[-1]["access_key"]
    assert document["SecretAccessKey"] == pod_identity.issued[-1]["secret_key"]
    result = cli("env", "--format", "json", env=pod_identity.env)
    assert result.code == 0, result.text
    assert result.json()["AWS_SESSION_TOKEN"] == pod_identity.issued[-1]["session_token"]


@pytest.mark.parametrize("disabled", [False, True])
def test_doctor_names_the_node_role_as_botocores_last_resort(cli, disabled):
    # No IRSA, no Pod Identity, no keys, no profile: only the node's role is left.
    env = dict((k, v) for k, v in os.environ.items() if not k.startswith("AWS_"))
    env.update(AWS_CONFIG_FILE=os.devnull, AWS_SHARED_CREDENTIALS_FILE=os.devnull, AWS_REGION="us-east-1")
    if disabled:
        env["AWS_EC2_METADATA_DISABLED"] = "true"
    found = cli("doctor", "--json", env=env).finding("credential-sources")
    assert found["irsa_session_uses"] == "default-chain"
    assert found["botocore_chain"][-1] == "iam-role"
    assert "node role: instance metadata (169.254.169.254)" in found["detail"]
    honoured = hasattr(botocore.utils, "IMDSFetcher")  # botocore 1.8 ignores the variable
    if disabled and honoured:
        assert found["botocore_chain_uses"] == "nothing (instance metadata is disabled): NoCredentialsError"
        assert "disabled by AWS_EC2_METADATA_DISABLED=true" in found["detail"]
    else:
        assert found["botocore_chain_uses"].startswith("the node's role through instance metadata")
        if disabled:
            assert "this botocore ignores it" in found["detail"]


def test_trust_policy_for_pod_identity(cli):
    """Moving to EKS Pod Identity: the role trusts pods.eks.amazonaws.com (issue 26)."""
    result = cli("trust-policy", "--pod-identity")
    assert result.code == 0, result.text
    assert result.json() == {
        "Version": "2012-10-17",
        "Statement": [{
            "Sid": "AllowEksAuthToAssumeRoleForPodIdentity",
            "Effect": "Allow",
            "Principal": {"Service": "pods.eks.amazonaws.com"},
            "Action": ["sts:AssumeRole", "sts:TagSession"],
        }],
    }
    refused = cli("trust-policy", "--pod-identity", "--namespace", "team-a", "--service-account", "x")
    assert refused.code == 2 and refused.stdout == ""
    assert "--pod-identity takes no --namespace or --service-account" in refused.stderr
    assert "create-pod-identity-association" in refused.stderr
    both = cli("trust-policy", "--pod-identity", "--issuer", ISSUER)
    assert both.code == 2 and "not allowed with argument" in both.stderr


@pytest.mark.parametrize("command", ["env", "credential-process", "doctor"])
def test_messages_name_the_command_line_s_flags_not_python_arguments(cli, command):
    """Issue 26: "--role-arn", not "role_arn="; and no fix that says only "do what the
    message says"."""
    result = cli(command, "--role-arn", "arn:aws:s3:::not-a-role", "--token-file", "/tmp/token")
    assert result.code == 1
    text = result.stdout + result.stderr
    assert "--role-arn" in text and "AWS_ROLE_ARN" in text
    assert "role_arn" not in text.replace("AWS_ROLE_ARN", "")
    assert "do what the message says" not in text
