"""Forks: a child never inherits a lock another thread of its parent held."""

import os
import threading

import pytest

from irsa_session import _compat, _redact, config, install, sts
from irsa_testing.processes import in_child

pytestmark = pytest.mark.skipif(not hasattr(os, "fork"), reason="needs os.fork")


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
