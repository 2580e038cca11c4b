"""Faults, outages, bursts, token rotation, a simulated day, forks and bad input.

The scenarios live in ``irsa_testing/scenarios.py`` so that ``tools/reliability.py``
can print the same figures these tests hold to their bounds.
"""

import multiprocessing
import os
import pickle
import subprocess
import sys

import pytest

from irsa_session import (
    _compat,
    config,
    ConfigError,
    RefreshError,
    TokenFileError,
    assumed_role_session,
    sts,
)
from irsa_testing import ROLE_ARN, scenarios
from irsa_testing.leaks import assert_clean, secrets_of
from irsa_testing.servers import free_port


@pytest.mark.parametrize("name", sorted(scenarios.TRANSIENT_FAULTS))
def test_transient_fault_is_invisible_to_the_application(fake_sts, tmp_path, name):
    figures = scenarios.transient_fault(fake_sts, str(tmp_path), name)
    assert figures["error"] is None
    assert figures["attempts"] <= sts.DEFAULT_RETRY.attempts
    expected = 6 if name.startswith("5 faults") else (1 if name.startswith("slow") else 2)
    assert figures["attempts"] == expected
    assert figures["seconds"] <= figures["bound"]


def test_outage_in_the_advisory_window(fake_sts, tmp_path):
    figures = scenarios.advisory_outage(fake_sts, str(tmp_path))
    assert figures["served"] == figures["advisory_seconds"] - 2  # every call in the window
    # One try per cooldown (60 s) instead of one per API call.
    assert 1 <= figures["advisory_sts_calls"] <= figures["advisory_seconds"] // 60 + 1
    assert figures["mandatory_sts_calls"] == sts.DEFAULT_RETRY.attempts
    error = figures["error"]
    assert isinstance(error, RefreshError) and error.code == "ServiceUnavailable"
    assert "ServiceUnavailable" in str(error) and ROLE_ARN in str(error)


def test_burst_against_a_rate_limited_sts(fake_sts, tmp_path):
    figures = scenarios.burst(fake_sts, str(tmp_path), threads=100, processes=16, rate=5)
    assert figures["errors"] == []
    assert figures["ok_threads"] == 100 and figures["ok_processes"] == 16
    # One successful exchange per process: the 100 threads share one.
    assert figures["sts_calls"] - figures["throttled"] == 17


def test_token_rotation_under_load(fake_sts, tmp_path):
    figures = scenarios.rotation(fake_sts, str(tmp_path), threads=32, seconds=2.0)
    assert figures["failures"] == []
    assert figures["rotations"] > 50 and figures["sts_calls"] > 50
    assert figures["incomplete_tokens"] == 0
    assert figures["stale_tokens"] == 0


def test_stale_token_on_disk(fake_sts, tmp_path):
    figures = scenarios.stale_token(fake_sts, str(tmp_path))
    assert figures["sts_calls"] == 2  # read again and retried once
    text = str(figures["error"])
    assert figures["error"].code == "ExpiredTokenException"
    assert "has expired" in text and "kubelet" in text and str(tmp_path) in text


def test_simulated_day_never_signs_with_expired_credentials(tmp_path):
    figures = scenarios.simulated_day(str(tmp_path), threads=64, failure_rate=0.1)
    assert figures["errors"] == []
    assert figures["uses"] == 64 * 24 * 60
    assert figures["expired_uses"] == 0
    assert figures["refreshes"] <= 32
    assert figures["sts_calls"] <= 32 * 2


@pytest.mark.skipif(not hasattr(os, "fork"), reason="needs os.fork")
def test_fork_while_a_refresh_is_in_flight(fake_sts, tmp_path):
    figures = scenarios.fork_during_refresh(fake_sts, str(tmp_path))
    assert figures["child_key"] is not None, "the child hung"
    assert figures["child_key"].startswith("ASIA")
    assert figures["child_key"] != figures["parent_key"]


def _worker_report(session):
    """Runs in a pool worker: the session's key and whether it starts with no clients."""
    empty = len(session._irsa_clients) == 0
    client = session.client("s3", region_name="us-east-1")
    key = session.get_credentials().get_frozen_credentials().access_key
    return os.getpid(), key, empty, id(client)


@pytest.mark.parametrize("method", ["fork", "spawn"])
def test_multiprocessing_with_pickled_sessions(fake_env, method):
    if method not in multiprocessing.get_all_start_methods():
        pytest.skip("no %s start method here" % method)
    session = assumed_role_session()
    parent_client = session.client("s3", region_name="us-east-1")  # not to be shared
    parent_key = session.get_credentials().get_frozen_credentials().access_key
    context = multiprocessing.get_context(method)
    pool = context.Pool(2, maxtasksperchild=1)  # each task in a fresh process
    try:
        reports = pool.map_async(_worker_report, [session] * 4).get(timeout=90)
    finally:
        pool.terminate()
        pool.join()
    assert all(key.startswith("ASIA") for _, key, _, _ in reports)
    assert all(empty for _, _, empty, _ in reports)  # no client came from the parent
    # A forked child sees the parent's objects at the parent's addresses.
    assert all(client != id(parent_client) for _, _, _, client in reports)
    if method == "spawn":  # rebuilt from settings: their own credentials
        assert all(key != parent_key for _, key, _, _ in reports)
    assert len(set(pid for pid, _, _, _ in reports)) == 4


# --- bad input: each row of the README's "what you did -> what you get" table ---


def test_unset_variables_fall_back_or_raise():
    with pytest.raises(ConfigError) as caught:
        assumed_role_session(fallback=False)
    assert "AWS_ROLE_ARN and AWS_WEB_IDENTITY_TOKEN_FILE are unset" in str(caught.value)


@pytest.mark.parametrize(
    "arguments, expected, named",
    [
        (dict(token_file="relative/token"), ConfigError, "token_file or AWS_WEB_IDENTITY_TOKEN_FILE"),
        (dict(role_arn="arn:aws:iam::12345:role/x"), ConfigError, "role_arn or AWS_ROLE_ARN"),
        (dict(role_arn="arn:aws:s3:::my-bucket"), ConfigError, "role_arn or AWS_ROLE_ARN"),
        (dict(duration_seconds=60), ConfigError, "duration_seconds"),
        (dict(duration_seconds=86400), ConfigError, "duration_seconds"),
        (dict(region_name="us east 1"), ConfigError, "AWS_REGION"),
        (dict(sts_endpoint_url="sts.amazonaws.com"), ConfigError, "AWS_ENDPOINT_URL_STS"),
    ],
)
def test_bad_settings(irsa_env, arguments, expected, named):
    with pytest.raises(expected) as caught:
        assumed_role_session(**arguments)
    assert named in str(caught.value)


def _token_error(path):
    with pytest.raises(TokenFileError) as caught:
        assumed_role_session(token_file=path).get_credentials().get_frozen_credentials()
    return str(caught.value)


def test_bad_token_files(fake_env, tmp_path):
    (tmp_path / "empty").write_text("  \n")
    (tmp_path / "binary").write_bytes(b"\xff\xfe\x00token")
    assert "does not exist" in _token_error(str(tmp_path / "missing"))
    assert "is a directory" in _token_error(str(tmp_path))
    assert "is empty" in _token_error(str(tmp_path / "empty"))
    assert "is not UTF-8" in _token_error(str(tmp_path / "binary"))
    assert fake_env.call_count == 0


@pytest.mark.skipif(not hasattr(os, "getuid") or os.getuid() != 0, reason="needs root to switch users")
def test_token_unreadable_by_a_non_root_user(tmp_path):
    path = tmp_path / "token"
    path.write_text("secret-token-content-0123456789")
    os.chmod(str(path), 0o600)
    os.chmod(str(tmp_path), 0o755)
    code = (
        "import os\n"
        "from irsa_session import token, TokenFileError\n"
        "os.setgid(65534); os.setuid(65534)  # after the imports: pyenv lives under /root\n"
        "try:\n    token.read(%r)\n"
        "except TokenFileError as err:\n    print(err)\n" % str(path)
    )
    done = subprocess.run(
        [sys.executable, "-c", code], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
        universal_newlines=True, timeout=60, cwd=str(tmp_path),
    )
    assert "not readable by this user (uid 65534)" in done.stdout, done.stderr
    assert "fsGroup" in done.stdout and "secret-token-content" not in done.stdout


def test_a_token_that_is_not_a_jwt_explains_itself(fake_env, tmp_path):
    path = tmp_path / "token"
    path.write_text("definitely-not-a-jwt-token-value")
    fake_env.set_mode(always_fail=("AccessDenied", None))
    with pytest.raises(RefreshError) as caught:
        assumed_role_session(token_file=str(path)).get_credentials().get_frozen_credentials()
    assert "is not a JWT" in str(caught.value)
    assert "definitely-not-a-jwt" not in str(caught.value)


def test_illegal_session_name_is_sanitised(fake_env):
    session = assumed_role_session(session_name="ray worker #3 (gpu)")
    session.get_credentials().get_frozen_credentials()
    assert fake_env.calls[-1]["params"]["RoleSessionName"] == "ray-worker--3--gpu-"


def test_unknown_region_names_the_region_variable(token_file, monkeypatch):
    """A well-formed but unknown region: the endpoint cannot be reached, and the
    error says which region variable chose it.  (The client is aimed at a closed
    loopback port instead of the real name, so nothing leaves this machine.)"""
    monkeypatch.setenv("AWS_REGION", "moon-central-1")
    settings = config.resolve(role_arn=ROLE_ARN, token_file=token_file)
    assert settings.sts_endpoint_url == "https://sts.moon-central-1.amazonaws.com"
    closed = "http://127.0.0.1:%d" % free_port()
    exchange = sts.Exchange(
        settings,
        client_factory=lambda s: _compat.sts_client(closed, s.region_name, 1, 1),
        retry=sts.RetryPolicy(attempts=2, base=0.01, cap=0.01),
    )
    with pytest.raises(RefreshError) as caught:
        exchange()
    text = str(caught.value)
    assert "could not reach STS at https://sts.moon-central-1.amazonaws.com" in text
    assert "AWS_REGION=moon-central-1" in text


def test_pickled_session_error_paths_carry_no_secrets(fake_env):
    """A refresh that failed leaves nothing secret in the session's pickle, nor in the error's."""
    session = assumed_role_session()
    creds = session.get_credentials()
    creds.get_frozen_credentials()
    fake_env.set_mode(always_fail=("AccessDenied", None))
    creds._expiry_time = creds.expires_at.replace(year=2000)  # due: this use must refresh
    with pytest.raises(RefreshError) as caught:
        creds.get_frozen_credentials()
    assert caught.value.code == "AccessDenied" and fake_env.call_count == 2  # the error path ran
    data = [pickle.dumps(session), pickle.dumps(caught.value), pickle.dumps(caught.value.__cause__)]
    assert_clean(data, secrets_of(fake_env))
