"""A fake clock: seconds since the epoch, moved only by the test."""

__all__ = ["FakeClock"]

import threading
import time


class FakeClock(object):
    """Seconds since the epoch, moved only by ``tick`` or by setting ``now``.

    Call it where a ``clock=`` or ``time_fetcher=`` is wanted; pass ``tick`` as a
    ``sleep=`` to make waits take simulated time.  ``start`` defaults to the real
    time now.  ``tick`` is safe from many threads.
    """

    def __init__(self, start=None):
        self.now = time.time() if start is None else start
        self._lock = threading.Lock()

    def __call__(self):
        return self.now

    def tick(self, seconds):
        with self._lock:
            self.now += seconds
