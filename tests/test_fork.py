"""Forks: a child never inherits a lock another thread of its parent held."""

import os
import select
import threading

import pytest

from irsa_session import _compat, _redact, config, install, sts

pytestmark = pytest.mark.skipif(not hasattr(os, "fork"), reason="needs os.fork")


def in_child(work, seconds=20):
    """Run ``work()`` in a forked child; return what it wrote, or None if it hung."""
    read_end, write_end = os.pipe()
    pid = os.fork()
    if pid == 0:
        try:
            os.write(write_end, str(work()).encode())
        except BaseException as err:  # reported to the parent, which asserts on it
            os.write(write_end, ("error %s: %s" % (type(err).__name__, err)).encode())
        finally:
            os._exit(0)
    os.close(write_end)
    ready, _, _ = select.select([read_end], [], [], seconds)
    if not ready:
        os.kill(pid, 9)
    os.waitpid(pid, 0)
    text = os.read(read_end, 1000).decode() if ready else None
    os.close(read_end)
    return text


def held_by_another_thread(get_lock):
    """Start a thread that takes the lock ``get_lock()`` returns and keeps it."""
    taken, release = threading.Event(), threading.Event()

    def hold():
        with get_lock():
            taken.set()
            release.wait(30)

    thread = threading.Thread(target=hold, daemon=True)
    thread.start()
    assert taken.wait(5)
    return release, thread


@pytest.mark.parametrize(
    "name, get_lock",
    [
        ("redact", lambda: _redact._lock),
        ("install", lambda: _compat._chain_lock),
    ],
)
def test_a_child_forked_while_a_thread_holds_a_module_lock_works(fake_env, name, get_lock):
    settings = config.resolve()
    release, thread = held_by_another_thread(get_lock)
    try:
        def work():
            install()  # takes the install lock
            return sts.Exchange(settings)().access_key  # remembers secrets under redact's lock

        said = in_child(work)
    finally:
        release.set()
        thread.join(5)
    assert said is not None, "the child hung on the %s lock" % name
    assert said == fake_env.issued[-1]["access_key"], said
