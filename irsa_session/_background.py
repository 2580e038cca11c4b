"""One background thread per process that runs the credentials' advisory refreshes.

A refresher whose credentials enter their advisory window hands its refresh to
:func:`submit` and goes on serving the current credentials, so no caller waits
for STS (see :mod:`irsa_session._refresh`).  The thread starts with the first
task, never at import; it is a daemon, so it never keeps the interpreter from
exiting; a forked child starts its own when it submits one, and inherits
nothing of its parent's queue.  Tasks run one at a time, in order.  The
:class:`Worker` that runs them also delivers ``on_refresh`` events, on a thread
of its own (:mod:`irsa_session._events`).
"""

import collections
import logging
import os
import threading
import time

from . import _fork

__all__ = ["submit", "idle", "Worker"]

logger = logging.getLogger("irsa_session.credentials")


class Worker(object):
    """A daemon thread named ``name`` that runs tasks one at a time, in order.

    The thread starts with the first task.  Tasks are numbered from 1 as they are
    submitted; :attr:`done` counts those that have run.
    """

    def __init__(self, name):
        self.name = name
        self.pid = os.getpid()
        self.lock = threading.Lock()
        self.ready = threading.Condition(self.lock)
        self.tasks = collections.deque()
        self.thread = None
        self.busy = False
        self.busy_since = 0.0  # time.monotonic() when the running task started
        self.submitted = 0
        self.done = 0

    def submit(self, task):
        """Queue ``task()``; its number.  Raises RuntimeError where no thread can start."""
        with self.lock:
            if self.thread is None:
                thread = threading.Thread(target=self._run, name=self.name)
                thread.daemon = True
                thread.start()  # may raise at interpreter shutdown: the caller does without
                self.thread = thread
            self.tasks.append(task)
            self.submitted += 1
            self.ready.notify_all()
            return self.submitted

    def waiting(self):
        """Tasks queued and not started."""
        return len(self.tasks)

    def stuck_for(self):
        """Seconds the running task has run, 0 if none runs."""
        return time.monotonic() - self.busy_since if self.busy else 0.0

    def _run(self):
        while True:
            with self.lock:
                while not self.tasks:
                    self.busy = False
                    self.ready.notify_all()
                    self.ready.wait()
                task = self.tasks.popleft()
                self.busy = True
                self.busy_since = time.monotonic()
            try:
                task()
            except Exception:  # a task reports its own failures; the thread goes on
                logger.debug("task of %s failed", self.name, exc_info=True)
            with self.lock:
                self.done += 1
                self.ready.notify_all()

    def wait_done(self, number, timeout):
        """Wait until task ``number`` has run; False if ``timeout`` passed first."""
        with self.lock:
            return self.ready.wait_for(lambda: self.done >= number, timeout)

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
                worker = _worker[0] = Worker("irsa-session-refresh")
    worker.submit(task)


def idle(timeout=10.0):
    """Wait until no background refresh is queued or running; False if ``timeout`` passed."""
    worker = _worker[0]
    if worker is None or worker.pid != os.getpid():
        return True
    return worker.idle(timeout)
