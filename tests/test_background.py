"""Advisory refreshes on the background thread: no caller waits for STS after the first use."""

import os
import subprocess
import sys
import threading
import time

import pytest

from irsa_session import _background, _refresh, assumed_role_session
from irsa_session.credentials import Credentials
from irsa_session.source import Issued
from irsa_testing.clock import FakeClock
from irsa_testing.processes import in_child

THREAD = "irsa-session-refresh"


class Recorder(object):
    """A fetch that records the thread of each call; ``gate`` holds a call until set."""

    def __init__(self, clock, life=3600):
        self.clock = clock
        self.life = life
        self.threads = []
        self.gate = threading.Event()
        self.gate.set()
        self.entered = threading.Event()

    def __call__(self, attempts=None):
        self.threads.append(threading.current_thread().name)
        self.entered.set()
        assert self.gate.wait(10)
        return Issued("ASIA%016d" % len(self.threads), "s" * 40, "t" * 40, self.clock() + self.life, None)


def test_an_advisory_refresh_runs_in_the_background_while_callers_go_on():
    clock = FakeClock()
    fetch = Recorder(clock)
    refresher = _refresh.Refresher(fetch, clock=clock, background=True)
    first = refresher.get()  # first use: the caller waits
    assert fetch.threads == [threading.current_thread().name]
    clock.tick(3600 - _refresh.ADVISORY + 1)
    fetch.gate.clear()
    fetch.entered.clear()
    assert refresher.get() is first  # at once, though a refresh is due
    assert fetch.entered.wait(10)  # the background thread is inside the fetch, held there
    for _ in range(50):
        assert refresher.get() is first  # nobody waits, nobody starts another
    assert len(fetch.threads) == 2 and fetch.threads[1] == THREAD
    fetch.gate.set()
    assert _background.idle(10)
    assert refresher.get() is not first and len(fetch.threads) == 2


def test_credentials_nobody_uses_are_not_refreshed():
    clock = FakeClock()
    fetch = Recorder(clock)
    refresher = _refresh.Refresher(fetch, clock=clock, background=True)
    refresher.get()
    clock.tick(3600 - _refresh.ADVISORY + 1)  # the advisory window, and no caller in it
    assert _background.idle(10)
    assert len(fetch.threads) == 1


def test_failed_background_tries_wait_a_cooldown_then_callers_wait_in_the_mandatory_window():
    clock = FakeClock()
    calls = []

    def fetch(attempts=None):
        calls.append(threading.current_thread().name)
        if len(calls) > 1 and clock() < start + 3600 - _refresh.MANDATORY:
            raise RuntimeError("STS is down (test)")
        return Issued("ASIA%016d" % len(calls), "s" * 40, "t" * 40, clock() + 3600, None)

    start = clock()
    refresher = _refresh.Refresher(fetch, clock=clock, background=True)
    first = refresher.get()
    clock.tick(3600 - _refresh.ADVISORY + 1)
    for _ in range(3):
        assert refresher.get() is first
        assert _background.idle(10)
    assert calls[1:] == [THREAD]  # one try; the next waits the cooldown
    clock.tick(61)
    assert refresher.get() is first and _background.idle(10)
    assert calls[1:] == [THREAD, THREAD]
    clock.tick(_refresh.ADVISORY - _refresh.MANDATORY)  # the mandatory window: the caller waits
    assert refresher.get() is not first
    assert calls[-1] == threading.current_thread().name


@pytest.mark.skipif(not hasattr(os, "fork"), reason="needs os.fork")
def test_a_forked_child_refreshes_in_a_background_thread_of_its_own():
    clock = FakeClock()
    fetch = Recorder(clock)
    credentials = Credentials(fetch, clock=clock, background=True)  # tracked for forks (weakly)
    refresher = credentials._refresher
    first = refresher.get()
    clock.tick(3600 - _refresh.ADVISORY + 1)
    fetch.gate.clear()
    fetch.entered.clear()
    refresher.get()
    assert fetch.entered.wait(10)  # the parent's background try is in flight, holding the lock

    def child():
        fetch.gate.set()  # the child's own fetches are not held
        assert refresher.get() is first  # still valid: the child goes on at once...
        assert _background.idle(10)  # ...and its own thread refreshes
        return "%s %s" % (refresher.get() is not first, fetch.threads[-1])

    said = in_child(child)
    fetch.gate.set()
    assert credentials.get_frozen_credentials() is not None
    assert said == "True %s" % THREAD, said
    assert _background.idle(10)


def test_the_background_thread_never_keeps_the_interpreter_from_exiting(fake_sts, irsa_env):
    """A process whose background refresh hangs on STS exits at once all the same."""
    code = (
        "import sys, time, irsa_session\n"
        "credentials = irsa_session.session.get_credentials()\n"
        "credentials.get_frozen_credentials()\n"
        "print('fetched', flush=True)\n"
        "sys.stdin.readline()  # the test makes STS hang now\n"
        "credentials._refresher.clock = lambda: time.time() + 3600 - 700  # the advisory window\n"
        "credentials.get_frozen_credentials()\n"
        "while True:  # until the background thread is inside its call\n"
        "    time.sleep(0.05)\n"
        "    if sys.stdin.readline().strip() == 'exit':\n"
        "        break\n"
    )
    env = dict(os.environ, AWS_ENDPOINT_URL_STS=fake_sts.url)
    child = subprocess.Popen([sys.executable, "-c", code], env=env, stdin=subprocess.PIPE,
                             stdout=subprocess.PIPE, stderr=subprocess.PIPE, universal_newlines=True)
    try:
        assert child.stdout.readline().strip() == "fetched"
        fake_sts.set_mode(delay=60)
        child.stdin.write("go\n")
        child.stdin.flush()
        deadline = time.monotonic() + 20
        while fake_sts.call_count < 2:
            assert time.monotonic() < deadline, "no background refresh reached STS"
            time.sleep(0.05)
        assert fake_sts.calls[1]["answered"] is None  # in flight, held by STS
        started = time.monotonic()
        child.stdin.write("exit\n")
        child.stdin.flush()
        child.wait(30)
        took = time.monotonic() - started
    finally:
        if child.poll() is None:
            child.kill()
        err = child.communicate()[1]
    assert child.returncode == 0, err
    assert took < 5, "the process waited %.1f s for its background thread" % took


def test_no_reader_waits_for_sts_after_the_first_use(fake_env):
    """32 threads read for several lifetimes of 8-second credentials; STS takes 300 ms.
    Every STS call after the first is made on the background thread, and no reader
    ever blocks on the refresh lock."""
    fake_env.set_mode(duration=8, honor_duration=False, delay=0.3)
    credentials = assumed_role_session().get_credentials()
    refresher = credentials._refresher
    credentials.get_frozen_credentials()  # first use
    blocked = []
    lock = refresher.lock

    class Watched(object):
        def acquire(self, blocking=True):
            if lock.acquire(False):
                return True
            if not blocking:
                return False
            blocked.append(threading.current_thread().name)
            return lock.acquire()

        def release(self):
            lock.release()

        __enter__ = acquire

        def __exit__(self, *exc_info):
            lock.release()

    refresher.lock = Watched()
    callers = []
    real_fetch, real_advisory = refresher.fetch, refresher.advisory_fetch

    def fetch(*args, **kwargs):
        callers.append(threading.current_thread().name)
        return real_fetch(*args, **kwargs)

    def advisory_fetch(*args, **kwargs):
        callers.append(threading.current_thread().name)
        return real_advisory(*args, **kwargs)

    refresher.fetch, refresher.advisory_fetch = fetch, advisory_fetch
    deadline = time.monotonic() + 14  # nearly two lifetimes
    errors = []

    def reader():
        while time.monotonic() < deadline:
            try:
                credentials.get_frozen_credentials()
            except Exception as err:  # counted: the test wants none
                errors.append(err)
            time.sleep(0.01)

    threads = [threading.Thread(target=reader, name="reader-%d" % n) for n in range(32)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(60)
    assert errors == []
    assert len(callers) >= 1, "no refresh happened in 14 s of 8-second credentials"
    assert set(callers) == {THREAD}, callers
    assert [name for name in blocked if name.startswith("reader")] == []
    assert fake_env.call_count == len(callers) + 1


def test_an_idle_session_makes_no_sts_call(fake_env):
    fake_env.set_mode(duration=4, honor_duration=False)
    session = assumed_role_session()
    session.get_credentials().get_frozen_credentials()
    time.sleep(5)  # a whole lifetime and more, unused
    assert _background.idle(10)
    assert fake_env.call_count == 1
