"""The node-wide cache: one STS call per refresh across processes, and nothing trusted blindly."""

import json
import logging
import os
import stat
import subprocess
import sys
import threading

import pytest

from irsa_session import ConfigError, assumed_role_session, cache, config, sts, token
from irsa_session.credentials import ADVISORY, Credentials
from irsa_testing import ROLE_ARN
from irsa_testing.clock import FakeClock
from irsa_testing.processes import in_child, in_flight
from irsa_testing.tokens import make_token

pytestmark = pytest.mark.skipif(not cache.available(), reason="needs fcntl file locks")

HERE = os.path.dirname(os.path.abspath(__file__))


def node_cache(fake_sts, token_file, directory, clock=None):
    settings = config.resolve(
        role_arn=ROLE_ARN, token_file=token_file, sts_endpoint_url=fake_sts.url,
        environ={}, cache_dir=str(directory),
    )
    return cache.NodeCache(sts.Exchange(settings), settings.cache_dir, clock=clock or FakeClock())


def entries(directory):
    return sorted(name for name in os.listdir(str(directory)) if name.endswith(".json"))


def test_second_reader_uses_the_first_ones_entry(fake_sts, token_file, tmp_path):
    directory = tmp_path / "cache"
    first = node_cache(fake_sts, token_file, directory)()
    second = node_cache(fake_sts, token_file, directory)()
    assert fake_sts.call_count == 1
    assert second.access_key == first.access_key and second.secret_key == first.secret_key
    assert stat.S_IMODE(os.stat(str(directory)).st_mode) == 0o700
    (name,) = entries(directory)
    assert stat.S_IMODE(os.stat(str(directory / name)).st_mode) == 0o600
    text = (directory / name).read_text()
    assert open(token_file).read().strip() not in text and ROLE_ARN not in name


def test_entry_due_for_refresh_is_replaced(fake_sts, token_file, tmp_path):
    clock = FakeClock()
    directory = tmp_path / "cache"
    node_cache(fake_sts, token_file, directory, clock)()
    clock.tick(3600 - ADVISORY + 1)
    node_cache(fake_sts, token_file, directory, clock)()
    assert fake_sts.call_count == 2


@pytest.mark.parametrize("damage", ["corrupt", "loose mode", "wrong format", "symlink"])
def test_damaged_entries_are_ignored_and_replaced(fake_sts, token_file, tmp_path, damage):
    directory = tmp_path / "cache"
    node_cache(fake_sts, token_file, directory)()
    (name,) = entries(directory)
    path = directory / name
    if damage == "corrupt":
        path.write_text("{not json")
    elif damage == "loose mode":
        os.chmod(str(path), 0o644)
    elif damage == "wrong format":
        data = json.loads(path.read_text())
        data["format"] = 99
        path.write_text(json.dumps(data))
    else:
        target = tmp_path / "elsewhere.json"
        target.write_text(path.read_text())
        os.chmod(str(target), 0o600)
        path.unlink()
        os.symlink(str(target), str(path))
    issued = node_cache(fake_sts, token_file, directory)()
    assert fake_sts.call_count == 2
    assert issued.access_key == fake_sts.issued[-1]["access_key"]
    assert not os.path.islink(str(path))
    assert json.loads(path.read_text())["access_key"] == issued.access_key


@pytest.mark.parametrize("mode", [0o777, 0o2777, 0o755])
def test_a_fresh_emptydir_works_through_a_private_directory_inside_it(fake_sts, token_file, tmp_path, caplog, mode):
    """A kubelet emptyDir is 0777 (2777 with an fsGroup): four processes make one STS call."""
    directory = tmp_path / "emptydir"
    directory.mkdir()
    os.chmod(str(directory), mode)
    keys = [in_child(lambda: node_cache(fake_sts, token_file, directory)().access_key) for _ in range(4)]
    assert fake_sts.call_count == 1
    assert keys == [fake_sts.issued[0]["access_key"]] * 4
    inner = directory / (".irsa-session-%d" % os.getuid())
    assert stat.S_IMODE(os.stat(str(inner)).st_mode) & 0o777 == 0o700  # (2700 under a setgid parent)
    assert len(entries(inner)) == 1 and entries(directory) == []
    assert stat.S_IMODE(os.stat(str(directory)).st_mode) == mode  # left as the kubelet made it
    assert "node cache" not in caplog.text


@pytest.mark.parametrize("planted", ["another user's directory", "a symlink", "a loose directory"])
def test_a_private_directory_someone_else_could_change_is_refused(fake_sts, token_file, tmp_path, caplog, planted):
    directory = tmp_path / "emptydir"
    directory.mkdir()
    os.chmod(str(directory), 0o777)
    inner = directory / (".irsa-session-%d" % os.getuid())
    if planted == "a symlink":
        (tmp_path / "theirs").mkdir(mode=0o700)
        os.symlink(str(tmp_path / "theirs"), str(inner))
    else:
        inner.mkdir()
        os.chmod(str(inner), 0o700 if planted == "another user's directory" else 0o770)
        if planted == "another user's directory":
            if os.getuid() != 0:
                pytest.skip("needs root to make a directory another user owns")
            os.chown(str(inner), 65534, 65534)
    with caplog.at_level(logging.WARNING, logger="irsa_session.cache"):
        for _ in range(3):
            node_cache(fake_sts, token_file, directory)()
    assert fake_sts.call_count == 3  # nothing shared through it
    assert not any(name.endswith(".json") for _, _, names in os.walk(str(tmp_path)) for name in names)
    assert caplog.text.count("is unusable") == 3  # once per process (each cache here is one)


def test_an_entry_serves_only_the_token_that_made_it(fake_sts, tmp_path):
    """Possession of the token is the proof: the same claims in a forged JWT get nothing."""
    directory = tmp_path / "cache"
    real = tmp_path / "token"
    real.write_text(make_token(sub="system:serviceaccount:a:one"))
    made = node_cache(fake_sts, str(real), directory)()
    again = node_cache(fake_sts, str(real), directory)()
    assert fake_sts.call_count == 1 and again.secret_key == made.secret_key
    claims = token.claims(real.read_text())
    forged = tmp_path / "forged"
    forged.write_text(make_token(**claims))  # same iss, sub, aud, exp and iat; another signature
    assert token.claims(forged.read_text()) == claims
    other = node_cache(fake_sts, str(forged), directory)()
    assert fake_sts.call_count == 2 and other.secret_key != made.secret_key
    assert fake_sts.calls[-1]["token"] == forged.read_text()
    real.write_text(make_token(sub="system:serviceaccount:a:one"))  # the kubelet rotated it
    node_cache(fake_sts, str(real), directory)()
    assert fake_sts.call_count == 3 and len(entries(directory)) == 3


def test_threads_in_one_process_make_one_call(fake_sts, token_file, tmp_path):
    fake_sts.set_mode(delay=0.3)
    directory = tmp_path / "cache"
    caches = [node_cache(fake_sts, token_file, directory) for _ in range(8)]
    keys = []
    threads = [threading.Thread(target=lambda c=c: keys.append(c().access_key)) for c in caches]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(30)
    assert fake_sts.call_count == 1 and len(set(keys)) == 1


def test_processes_on_a_node_share_one_call(fake_sts, token_file, tmp_path):
    env = dict(os.environ)
    env.update(
        AWS_ROLE_ARN=ROLE_ARN, AWS_WEB_IDENTITY_TOKEN_FILE=token_file,
        AWS_ENDPOINT_URL_STS=fake_sts.url, IRSA_SESSION_CACHE_DIR=str(tmp_path / "cache"),
    )
    fake_sts.set_mode(delay=0.3)
    code = "from irsa_session import session\nprint(session.get_credentials().get_frozen_credentials().access_key)\n"
    children = [
        subprocess.Popen([sys.executable, "-c", code], env=env, stdout=subprocess.PIPE,
                         stderr=subprocess.PIPE, universal_newlines=True)
        for _ in range(8)
    ]
    outputs = [child.communicate(timeout=60) for child in children]
    assert all(child.returncode == 0 for child in children), outputs
    assert len(set(out.strip() for out, _ in outputs)) == 1
    assert fake_sts.call_count == 1


def test_session_setting_and_validation(fake_env, tmp_path, monkeypatch):
    session = assumed_role_session(cache_dir=str(tmp_path / "c"))
    assert isinstance(session.get_credentials()._refresh_using, cache.NodeCache)
    session.get_credentials().get_frozen_credentials()
    assert len(entries(tmp_path / "c")) == 1
    with pytest.raises(ConfigError) as caught:
        assumed_role_session(cache_dir="relative/dir")
    assert "cache_dir or IRSA_SESSION_CACHE_DIR" in str(caught.value)
    monkeypatch.setenv("IRSA_SESSION_CACHE_DIR", str(tmp_path / "from-env"))
    assert assumed_role_session().get_credentials()._refresh_using.directory == str(tmp_path / "from-env")


def test_credentials_windows_use_the_original_lifetime(fake_sts, token_file, tmp_path):
    clock = FakeClock()
    directory = tmp_path / "cache"
    node_cache(fake_sts, token_file, directory, clock)()
    clock.tick(1800)  # half-way through a 1 h credential
    reader = node_cache(fake_sts, token_file, directory, clock)
    creds = Credentials(reader, clock=clock)
    creds.get_frozen_credentials()
    assert fake_sts.call_count == 1
    remaining = (creds.refresh_at - creds.expires_at).total_seconds()
    assert remaining == pytest.approx(-ADVISORY, abs=1)


def write_entry(directory, **changes):
    (name,) = entries(directory)
    path = directory / name
    data = json.loads(path.read_text())
    data.update(changes)
    path.write_text(json.dumps(data))
    return path


@pytest.mark.parametrize(
    "changes",
    [
        {"expiry": float("nan")},
        {"expiry": float("inf")},
        {"issued_at": float("-inf")},
        {"expiry": "1e400"},
        {"issued_at": 0.0},  # a life of decades: no STS issues that
        {"secret_key": "wJalrXUtnFEMI/K7MDENG\nAWS_PROFILE=evil"},
        {"access_key": "ASIA EXAMPLE 000000"},
        {"token": 12345},
    ],
    ids=["nan", "inf", "-inf issued", "overflow", "too long a life", "newline", "space", "not text"],
)
def test_entries_sts_could_not_have_written_are_ignored(fake_sts, token_file, tmp_path, changes):
    directory = tmp_path / "cache"
    node_cache(fake_sts, token_file, directory)()
    write_entry(directory, **changes)
    issued = node_cache(fake_sts, token_file, directory)()
    assert fake_sts.call_count == 2
    assert issued.access_key == fake_sts.issued[-1]["access_key"]


def test_leftovers_of_killed_writers_and_old_tokens_are_swept(fake_sts, token_file, tmp_path):
    directory = tmp_path / "cache"
    node_cache(fake_sts, token_file, directory)()
    (name,) = entries(directory)  # the live entry, before the leftovers join it
    old, fresh = directory / ".tmp-killed.json", directory / ".tmp-writing.json"
    dead, dead_lock = directory / ("0" * 64 + ".json"), directory / ("0" * 64 + ".json.lock")
    for path in (old, fresh, dead, dead_lock):
        path.write_text("{}")
    for path in (old,):
        os.utime(str(path), (0, os.path.getmtime(str(path)) - 120))
    for path in (dead, dead_lock):
        os.utime(str(path), (0, os.path.getmtime(str(path)) - 13 * 3600))
    clock = FakeClock()
    clock.tick(3600)  # the live entry is due: the next read exchanges and writes
    node_cache(fake_sts, token_file, directory, clock)()
    left = sorted(os.listdir(str(directory)))
    assert old.name not in left and dead.name not in left and dead_lock.name not in left
    assert fresh.name in left and name in left and name + ".lock" in left


@pytest.mark.skipif(not hasattr(os, "fork"), reason="needs os.fork")
def test_a_forked_child_does_not_keep_the_lock(fake_sts, token_file, tmp_path):
    """A child forked during a refresh outlives it: the next refresh does not wait for it."""
    import time

    directory = tmp_path / "cache"
    fake_sts.set_mode(delay=0.6)
    refreshing = in_flight(fake_sts, node_cache(fake_sts, token_file, directory))
    pid = os.fork()  # while the refresh holds the lock, waiting for STS
    if pid == 0:
        time.sleep(8)  # outlives the parent's refresh and the next one
        os._exit(0)
    assert refreshing.call["answered"] is None  # so the fork came mid-refresh
    try:
        refreshing.join(10)
        fake_sts.set_mode(delay=0.0)
        clock = FakeClock()
        clock.tick(3600)  # due again: the next caller must take the lock
        started = time.monotonic()
        node_cache(fake_sts, token_file, directory, clock)()
        waited = time.monotonic() - started
    finally:
        os.kill(pid, 9)
        os.waitpid(pid, 0)
    assert fake_sts.call_count == 2
    assert waited < 2.0, "waited %.1f s for a lock the forked child kept" % waited


@pytest.mark.parametrize("planted", ["fifo", "device", "huge file", "fifo lock", "device lock"])
def test_a_fifo_device_or_huge_file_in_the_cache_is_skipped_not_read(fake_sts, token_file, tmp_path, caplog, planted):
    directory = tmp_path / "cache"
    directory.mkdir(mode=0o700)
    fetch = node_cache(fake_sts, token_file, directory)
    path = fetch._entry_path()
    target = path + ".lock" if planted.endswith("lock") else path
    if planted.startswith("fifo"):
        os.mkfifo(target, 0o600)
    elif planted.startswith("device"):
        if os.getuid() != 0:
            pytest.skip("needs root to make a device node")
        os.mknod(target, 0o600 | stat.S_IFCHR, os.makedev(1, 5))  # what /dev/zero is
    else:
        with open(target, "wb") as handle:
            handle.truncate(64 * 1024 * 1024)  # sparse: 64 MiB of zeros
        os.chmod(target, 0o600)
    got = []
    with caplog.at_level(logging.WARNING, logger="irsa_session.cache"):
        worker = threading.Thread(target=lambda: got.append(fetch()), daemon=True)
        worker.start()
        worker.join(5)
    assert got, "the cache read what it should have skipped (still reading after 5 s)"
    assert got[0].access_key == fake_sts.issued[0]["access_key"]
    assert "node cache" in caplog.text
