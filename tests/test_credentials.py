"""Refreshing credentials: deferred, windows, cooldown, single flight, fork, secrets."""

import copy
import datetime
import logging
import os
import pickle
import select
import threading
import time

import pytest
from botocore.credentials import RefreshableCredentials

from irsa_session import RefreshError
from irsa_session.credentials import ADVISORY, MANDATORY, Credentials
from irsa_session.sts import Issued
from irsa_testing.scenarios import run_threads


class WatchedLock(object):
    """A lock that says when a caller blocks on it (``waiting`` is set)."""

    def __init__(self):
        self._lock = threading.Lock()
        self.waiting = threading.Event()

    def acquire(self, blocking=True):
        if self._lock.acquire(False):
            return True
        if not blocking:
            return False
        self.waiting.set()
        return self._lock.acquire()

    def release(self):
        self._lock.release()

    def locked(self):
        return self._lock.locked()

    __enter__ = acquire

    def __exit__(self, *exc_info):
        self.release()


class Fetch(object):
    """A stand-in for the STS exchange: counts calls, can fail or stall."""

    def __init__(self, clock, life=3600):
        self.clock = clock
        self.life = life
        self.calls = 0
        self.fail = False
        self.delay = 0.0
        self.lock = threading.Lock()

    def __call__(self):
        with self.lock:
            self.calls += 1
            number = self.calls
        if self.delay:
            time.sleep(self.delay)
        if self.fail:
            raise RefreshError("STS kept failing (test)", code="Throttling")
        return Issued(
            access_key="ASIAKEY%013d" % number,
            secret_key="secret-%d-abcdefghijklmnopqrstuvwxyz" % number,
            token="session-token-%d-abcdefghijklmnop" % number,
            expiry=self.clock() + self.life,
            account_id="111122223333",
        )


@pytest.fixture
def fetch(clock):
    return Fetch(clock)


@pytest.fixture
def creds(fetch, clock):
    return Credentials(fetch, clock=clock)


def test_is_a_botocore_refreshable_credentials_and_deferred(creds, fetch):
    assert isinstance(creds, RefreshableCredentials)
    assert fetch.calls == 0
    assert creds.expires_at is None and creds.refresh_at is None
    frozen = creds.get_frozen_credentials()
    assert fetch.calls == 1
    assert frozen.access_key == "ASIAKEY0000000000001"
    assert (creds.access_key, creds.secret_key, creds.token) == frozen[:3]
    for _ in range(100):
        creds.get_frozen_credentials()
    assert fetch.calls == 1


def test_windows_are_botocores(creds, fetch, clock):
    creds.get_frozen_credentials()
    expiry = clock() + 3600
    clock.now = expiry - ADVISORY - 1
    assert creds.get_frozen_credentials().access_key.endswith("1")
    assert fetch.calls == 1
    clock.now = expiry - ADVISORY + 1
    assert creds.get_frozen_credentials().access_key.endswith("2")
    assert fetch.calls == 2
    assert ADVISORY == 15 * 60 and MANDATORY == 10 * 60


def test_botocore_style_expiry_edits_move_the_windows(creds, fetch, clock):
    creds.get_frozen_credentials()
    assert fetch.calls == 1
    soon = datetime.datetime.fromtimestamp(clock() + 5 * 60, datetime.timezone.utc)
    creds._expiry_time = soon
    assert creds.refresh_needed(MANDATORY)
    assert creds.get_frozen_credentials().access_key.endswith("2")
    assert fetch.calls == 2
    assert creds._expiry_time == creds.expires_at


def test_failed_advisory_refresh_keeps_serving_and_cools_down(creds, fetch, clock, caplog):
    first = creds.get_frozen_credentials()
    expiry = clock() + 3600
    fetch.fail = True
    clock.now = expiry - ADVISORY + 1
    with caplog.at_level(logging.WARNING, logger="irsa_session"):
        assert creds.get_frozen_credentials() == first
    assert fetch.calls == 2
    assert "advisory refresh" in caplog.text and "next try is in 60 s" in caplog.text
    for _ in range(50):  # no STS call on every API call during an outage
        clock.tick(1)
        assert creds.get_frozen_credentials() == first
    assert fetch.calls == 2
    clock.tick(15)  # past the 60 s cooldown
    assert creds.get_frozen_credentials() == first
    assert fetch.calls == 3
    fetch.fail = False
    clock.tick(61)
    assert creds.get_frozen_credentials().access_key.endswith("4")


def test_failed_mandatory_refresh_raises(creds, fetch, clock):
    creds.get_frozen_credentials()
    expiry = clock() + 3600
    fetch.fail = True
    clock.now = expiry - MANDATORY + 1
    with pytest.raises(RefreshError) as caught:
        creds.get_frozen_credentials()
    assert caught.value.code == "Throttling"
    clock.now = expiry + 1
    with pytest.raises(RefreshError):
        creds.access_key
    fetch.fail = False
    assert creds.get_frozen_credentials().access_key.endswith(str(fetch.calls))


def test_first_fetch_failure_raises_then_recovers(creds, fetch):
    fetch.fail = True
    with pytest.raises(RefreshError):
        creds.get_frozen_credentials()
    fetch.fail = False
    assert creds.get_frozen_credentials() is not None
    assert fetch.calls == 2


def test_short_lived_credentials_scale_their_windows(clock):
    fetch = Fetch(clock, life=60)
    creds = Credentials(fetch, clock=clock)
    creds.get_frozen_credentials()
    creds.get_frozen_credentials()
    assert fetch.calls == 1
    assert abs((creds.expires_at - creds.refresh_at).total_seconds() - 15) < 0.01
    clock.tick(46)
    creds.get_frozen_credentials()
    assert fetch.calls == 2


def test_many_threads_first_use_makes_one_call(creds, fetch):
    fetch.delay = 0.05
    results, errors = run_threads(32, creds.get_frozen_credentials)
    assert errors == [] and len(results) == 32
    assert fetch.calls == 1
    assert len(set(results)) == 1


def test_many_threads_share_one_failed_mandatory_refresh(creds, fetch):
    fetch.delay = 0.1
    fetch.fail = True
    results, errors = run_threads(16, creds.get_frozen_credentials)
    assert results == [] and len(errors) == 16
    assert all(isinstance(err, RefreshError) for err in errors)
    assert fetch.calls == 1


def test_advisory_refresh_does_not_block_other_threads(creds, fetch, clock):
    first = creds.get_frozen_credentials()
    clock.now = clock() + 3600 - ADVISORY + 1
    fetch.delay = 0.3
    results, errors = run_threads(16, creds.get_frozen_credentials)
    assert errors == []
    assert fetch.calls == 2
    assert sum(1 for result in results if result == first) >= 15


def test_frozen_credentials_keep_their_secrets(creds):
    frozen = creds.get_frozen_credentials()
    for text in (repr(frozen), str(frozen), repr(creds), str(creds)):
        assert frozen.secret_key not in text and frozen.token not in text
    assert frozen.access_key in repr(frozen)
    with pytest.raises(TypeError) as caught:
        pickle.dumps(frozen)
    assert "pickle the irsa_session session" in str(caught.value)
    assert copy.copy(frozen) == frozen and copy.deepcopy(frozen) == frozen
    assert frozen.secret_key not in str(caught.value)


def test_refresh_needed_follows_the_windows(creds, clock):
    assert creds.refresh_needed()
    creds.get_frozen_credentials()
    assert not creds.refresh_needed()
    assert creds.refresh_needed(3601)
    clock.tick(3600 - ADVISORY + 1)
    assert creds.refresh_needed()


@pytest.mark.skipif(not hasattr(os, "fork"), reason="needs os.fork")
def test_fork_while_a_refresh_holds_the_lock(clock):
    parent = os.getpid()
    release = threading.Event()

    entered = threading.Event()

    def fetch():
        if os.getpid() == parent:
            entered.set()
            release.wait(10)  # the parent's refresh stalls, holding the lock
        return Issued("ASIA%016d" % os.getpid(), "s" * 40, "t" * 40, clock() + 3600, None)

    creds = Credentials(fetch, clock=clock)
    stuck = threading.Thread(target=creds.get_frozen_credentials)
    stuck.start()
    assert entered.wait(10)
    assert creds._refresh_lock.locked()
    read_end, write_end = os.pipe()
    pid = os.fork()
    if pid == 0:  # the child: must not deadlock on the parent's lock
        try:
            key = creds.get_frozen_credentials().access_key
            os.write(write_end, key.encode())
        finally:
            os._exit(0)
    os.close(write_end)
    ready, _, _ = select.select([read_end], [], [], 10)
    release.set()
    stuck.join(10)
    if not ready:
        os.kill(pid, 9)
    os.waitpid(pid, 0)
    assert ready, "the forked child deadlocked"
    assert os.read(read_end, 100).decode() == "ASIA%016d" % pid


def test_a_mandatory_caller_is_not_handed_a_failed_advisory_try(fetch, clock):
    """The advisory try is one quick attempt; a caller in the mandatory window
    that waited for it makes the full refresh instead of taking its error."""
    started, release = threading.Event(), threading.Event()

    def advisory():
        started.set()
        release.wait(10)
        raise RefreshError("one quick try failed (test)", code="Throttling")

    creds = Credentials(fetch, clock=clock, advisory_fetch=advisory)
    creds._refresher.lock = watched = WatchedLock()
    creds.get_frozen_credentials()
    clock.tick(3600 - ADVISORY + 1)  # advisory window
    first = threading.Thread(target=creds.get_frozen_credentials)
    first.start()
    assert started.wait(5)
    clock.tick(ADVISORY - MANDATORY)  # now the mandatory window
    got = []
    second = threading.Thread(target=lambda: got.append(creds.get_frozen_credentials()))
    second.start()
    assert watched.waiting.wait(10)  # the second caller is blocked on the advisory try's lock
    release.set()
    first.join(10)
    second.join(10)
    assert got and got[0].access_key == "ASIAKEY%013d" % 2
    assert fetch.calls == 2
