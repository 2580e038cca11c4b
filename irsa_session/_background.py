"""One background thread per process that runs the credentials' advisory refreshes.

A refresher whose credentials enter their advisory window hands its refresh to
:func:`submit` and goes on serving the current credentials, so no caller waits
for STS (see :mod:`irsa_session._refresh`).  The thread starts with the first
task, never at import; it is a daemon, so it never keeps the interpreter from
exiting; a forked child starts its own when it submits one, and inherits
nothing of its parent's queue.  Tasks run one at a time, in order.
"""

import collections
import logging
import os
import threading

from . import _fork

__all__ = ["submit", "idle"]

logger = logging.getLogger("irsa_session.credentials")


class _Worker(object):
    def __init__(self):
        self.pid = os.getpid()
        self.lock = threading.Lock()
        self.ready = threading.Condition(self.lock)
        self.tasks = collections.deque()
        self.thread = None
        self.busy = False

    def submit(self, task):
        with self.lock:
            self.tasks.append(task)
            if self.thread is None:
                thread = threading.Thread(target=self._run, name="irsa-session-refresh")
                thread.daemon = True
                thread.start()  # may raise at interpreter shutdown: the caller refreshes itself
                self.thread = thread
            self.ready.notify_all()

    def _run(self):
        while True:
            with self.lock:
                while not self.tasks:
                    self.busy = False
                    self.ready.notify_all()
                    self.ready.wait()
                task = self.tasks.popleft()
                self.busy = True
            try:
                task()
            except Exception:  # a task reports its own failures; the thread goes on
                logger.debug("background refresh task failed", exc_info=True)

    def idle(self, timeout):
        with self.lock:
            return self.ready.wait_for(lambda: not self.tasks and not self.busy, timeout)


_worker = [None]
_guard = threading.Lock()


def _forget():
    global _guard
    _guard = threading.Lock()  # a parent thread may have held it at the fork
    _worker[0] = None  # the parent's thread and queue are not in the child


_fork.after_fork(_forget)


def submit(task):
    """Run ``task()`` on this process's background thread (started on first use).

    Raises RuntimeError where no thread can be started (at interpreter shutdown).
    """
    worker = _worker[0]
    if worker is None or worker.pid != os.getpid():
        with _guard:
            worker = _worker[0]
            if worker is None or worker.pid != os.getpid():
                worker = _worker[0] = _Worker()
    worker.submit(task)


def idle(timeout=10.0):
    """Wait until no background refresh is queued or running; False if ``timeout`` passed."""
    worker = _worker[0]
    if worker is None or worker.pid != os.getpid():
        return True
    return worker.idle(timeout)
