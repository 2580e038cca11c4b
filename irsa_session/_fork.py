"""Resets locks and connections in a child process after ``os.fork()``."""

import os
import threading
import weakref

__all__ = ["track", "after_fork"]

_tracked = weakref.WeakSet()
# Weakly, like the tracked objects: a strong reference from the interpreter's
# at-fork list to a module's function keeps that module's globals (and botocore
# behind them) alive past the interpreter's module clean-up at exit, which then
# costs a few extra milliseconds of garbage collection in every process.
_callbacks = []  # weakref.ref to each function
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
    """Call ``callback()`` in every child forked from now on (a module's own locks).

    ``callback`` is held weakly: a module-level function, alive while its module is.
    """
    with _lock:
        _register()
        _callbacks.append(weakref.ref(callback))


def _reset_all():
    global _lock
    _lock = threading.Lock()  # a parent thread may have held it at the fork
    for reference in list(_callbacks):
        callback = reference()
        if callback is not None:
            callback()
    for obj in list(_tracked):
        obj._after_fork()
