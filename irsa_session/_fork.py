"""Resets locks and connections in a child process after ``os.fork()``."""

import os
import threading
import weakref

__all__ = ["track"]

_tracked = weakref.WeakSet()
_registered = []
_lock = threading.Lock()


def track(obj):
    """Call ``obj._after_fork()`` in every child forked from now on."""
    with _lock:
        if not _registered and hasattr(os, "register_at_fork"):
            os.register_at_fork(after_in_child=_reset_all)
            _registered.append(True)
        _tracked.add(obj)


def _reset_all():
    global _lock
    _lock = threading.Lock()  # a parent thread may have held it at the fork
    for obj in list(_tracked):
        obj._after_fork()
