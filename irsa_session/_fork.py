"""Resets locks and connections in a child process after ``os.fork()``."""

import os
import threading
import weakref

__all__ = ["track", "after_fork"]

_tracked = weakref.WeakSet()
_callbacks = []
_registered = []
_lock = threading.Lock()


def _register():
    if not _registered and hasattr(os, "register_at_fork"):
        os.register_at_fork(after_in_child=_reset_all)
        _registered.append(True)


def track(obj):
    """Call ``obj._after_fork()`` in every child forked from now on."""
    with _lock:
        _register()
        _tracked.add(obj)


def after_fork(callback):
    """Call ``callback()`` in every child forked from now on (a module's own locks)."""
    with _lock:
        _register()
        _callbacks.append(callback)


def _reset_all():
    global _lock
    _lock = threading.Lock()  # a parent thread may have held it at the fork
    for callback in list(_callbacks):
        callback()
    for obj in list(_tracked):
        obj._after_fork()
