"""An event for every credential fetch: ``on_refresh(callback)``, and the metrics.

Every fetch of a source (:class:`irsa_session.source.Source`: IRSA's exchange,
EKS Pod Identity's agent, an AssumeRole hop) and every node-cache hit makes one
:class:`Event`.  It carries no secret: the source, the role ARN and session name,
why the fetch ran, its result, how long it took, the requests it made and the new
expiry.

Subscribers are called on a thread of their own, one event at a time, in order.
A caller whose call made a fetch returns once the subscribers have had its event
(:func:`settle`, after the refresh's lock is released), or after :data:`WAIT`
seconds: a callback that blocks delays that caller by at most that once, never a
refresh, and is not waited for again while it stays stuck.  Past :data:`QUEUED`
waiting events new ones are dropped (and counted; a warning says so, once).  A
callback that raises is logged (its exception's type, at WARNING the first time)
and keeps its subscription; the others are still called.  The thread starts with
the first event that has a subscriber; a forked child starts its own.

When ``opentelemetry-api`` is installed, each event is also recorded as metrics
(:mod:`irsa_session._otel`), whether or not anyone subscribed.
"""

from __future__ import annotations

TYPE_CHECKING = False  # the annotations below are for type checkers; typing is not imported
if TYPE_CHECKING:
    from typing import Any, Callable

import collections
import logging
import os
import threading
import time

from . import _background, _fork

__all__ = ["Event", "on_refresh", "emit", "settle", "reason", "why", "delivered", "dropped", "QUEUED", "WAIT"]

logger = logging.getLogger("irsa_session.events")

Event = collections.namedtuple(
    "Event", "source role_arn session_name reason result duration attempts expiry time"
)
Event.__doc__ = """One credential fetch (never a secret).

``source``: ``"IRSA"``, ``"EKS Pod Identity"``, ``"AssumeRole"`` or ``"node cache"``
(a hit: credentials another process fetched).  ``role_arn``, ``session_name``: of the
role (None where the source names none: EKS Pod Identity).  ``reason``: ``"first"``
(first use), ``"background"`` or ``"advisory"`` (a refresh before the credentials are
due, on the background thread or by a caller), ``"mandatory"`` (callers wait for it),
``"expired-token"`` (a service refused the credentials as expired) or ``"direct"`` (a
fetch outside a refresh: the command line, ``doctor``).  ``result``: ``"ok"``, or the
error's code (``"AccessDenied"``, ``"Throttling"``, ...) or, without one, its class
name.  ``duration``: seconds, retries included.  ``attempts``: requests made to STS or
the agent (0 for a node-cache hit).  ``expiry``: of the new credentials, in seconds
since the epoch (None on failure).  ``time``: when the fetch ended, likewise.
"""

#: Events waiting for the subscribers past which new ones are dropped.
QUEUED = 1000
#: Seconds a caller whose call made a fetch waits for the subscribers to have its event.
WAIT = 1.0

_here = threading.local()  # .reason: why the fetch this thread runs was started


def reason():
    """Why the fetch running on this thread was started (see :class:`Event`)."""
    return getattr(_here, "reason", "direct")


def why(name):
    """Set this thread's reason to ``name``; returns the previous one, to set back."""
    previous = getattr(_here, "reason", "direct")
    _here.reason = name
    return previous


class _Delivery(object):
    """The subscribers, and the thread that calls them (a :class:`_background.Worker`
    of its own: a callback that blocks must not hold up a refresh)."""

    def __init__(self):
        self.pid = os.getpid()
        self.lock = threading.Lock()
        self.callbacks = []
        self.worker = _background.Worker("irsa-session-events")
        self.dropped = 0
        self.warned = set()  # callbacks that raised (warned once each), and "dropped"

    def add(self, callback):
        with self.lock:
            self.callbacks.append(callback)

    def remove(self, callback):
        with self.lock:
            for index, held in enumerate(self.callbacks):
                if held is callback:
                    del self.callbacks[index]
                    return

    def put(self, event):
        """Queue ``event``; its number (for :func:`settle`), or None if it is not queued."""
        ticket = None
        with self.lock:
            if not self.callbacks:
                return None
            if self.worker.waiting() >= QUEUED:
                self.dropped += 1
                warn = "dropped" not in self.warned
                self.warned.add("dropped")
            else:
                warn = False
                try:
                    ticket = self.worker.submit(lambda: self._deliver(event))
                except RuntimeError:  # the interpreter is exiting: no new thread
                    return None
        if warn:
            logger.warning(
                "an on_refresh callback is not keeping up (%d events wait): new events are "
                "dropped until it catches up; refreshes go on", QUEUED,
            )
        return ticket

    def _deliver(self, event):
        with self.lock:
            callbacks = list(self.callbacks)
        for callback in callbacks:
            self._call(callback, event)

    def _call(self, callback, event):
        try:
            callback(event)
        except Exception as err:
            first = callback not in self.warned
            self.warned.add(callback)
            # The type only: the callback's own text could quote anything.
            logger.log(
                logging.WARNING if first else logging.DEBUG,
                "on_refresh callback %s raised %s; it stays subscribed and refreshes go on",
                getattr(callback, "__qualname__", type(callback).__name__), type(err).__name__,
            )

    def wait_for(self, ticket):
        if self.worker.stuck_for() > WAIT:
            return  # a callback is stuck: waiting again would only add to it
        self.worker.wait_done(ticket, WAIT)

    def idle(self, timeout):
        return self.worker.idle(timeout)


_delivery = [_Delivery()]


def _forget():
    """In a forked child: the same subscribers, none of the parent's thread or queue."""
    old = _delivery[0]
    fresh = _delivery[0] = _Delivery()
    fresh.callbacks = list(old.callbacks)


_fork.after_fork(_forget)


def on_refresh(callback: Callable[[Event], Any]) -> Callable[[], None]:
    """Call ``callback(event)`` after every credential fetch in this process.

    ``event`` is an :class:`Event`: the source (``"IRSA"``, ``"EKS Pod Identity"``,
    ``"AssumeRole"``, ``"node cache"``), role ARN, session name, why the fetch ran,
    its result (``"ok"`` or the error's code), duration, attempts and the new
    expiry; never a secret.  Callbacks run on a thread of their own, in order, and
    the call that made a fetch returns once they have had its event: one that
    blocks delays that call by at most a second, once, and never a refresh; one
    that raises is logged and stays subscribed.

    Returns:
        A function that unsubscribes ``callback`` (calling it again does nothing).

    Raises:
        TypeError: ``callback`` is not callable.
    """
    if not callable(callback):
        raise TypeError(
            "on_refresh(callback): give a function that takes one event, not %s"
            % type(callback).__name__
        )
    delivery = _delivery[0]
    delivery.add(callback)

    def unsubscribe() -> None:
        _delivery[0].remove(callback)

    return unsubscribe


_metrics = [None]  # the _otel module's record function, False when there is none
_metrics_lock = threading.Lock()


def _recorder():
    record = _metrics[0]
    if record is None:
        with _metrics_lock:  # one set of instruments, whichever thread fetches first
            record = _metrics[0]
            if record is None:
                from . import _otel

                record = _metrics[0] = _otel.recorder() or False
    return record


def emit(source, settings, result, duration, attempts, expiry):
    """Record one fetch (see :class:`Event`), and hand it to the subscribers."""
    record = _recorder()
    delivery = _delivery[0]
    if not record and not delivery.callbacks:
        return
    event = Event(
        source=source,
        role_arn=getattr(settings, "role_arn", None),
        session_name=getattr(settings, "session_name", None),
        reason=reason(),
        result=result,
        duration=duration,
        attempts=attempts,
        expiry=expiry,
        time=time.time(),
    )
    if record:
        try:
            record(event)
        except Exception:  # metrics must never break a refresh
            logger.debug("recording metrics failed", exc_info=True)
    _here.ticket = delivery.put(event)


def settle():
    """Wait, at most :data:`WAIT` seconds, until the subscribers have had the last event
    this thread made.  Called by a caller whose call made a fetch, once no lock is
    held, so that its callbacks have run when the call returns; a callback stuck
    past :data:`WAIT` is not waited for again."""
    ticket = getattr(_here, "ticket", None)
    if ticket is None:
        return
    _here.ticket = None
    delivery = _delivery[0]
    if delivery.pid == os.getpid():
        delivery.wait_for(ticket)


def result_of(err):
    """An event's ``result`` for a fetch that raised ``err``."""
    return getattr(err, "code", None) or type(err).__name__


def delivered(timeout=10.0):
    """Wait until every queued event reached the subscribers; False if ``timeout`` passed."""
    return _delivery[0].idle(timeout)


def dropped():
    """Events dropped because the subscribers did not keep up."""
    return _delivery[0].dropped
