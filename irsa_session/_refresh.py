"""When credentials refresh: the windows, cooldown, one flight at a time, jitter.

Plain Python with its clock injected; nothing here knows botocore.  The
adapter in ``_compat`` serves a :class:`Refresher` as botocore's
``RefreshableCredentials``.

The rule, for credentials that live ``life`` seconds and expire at ``expiry``:

* refresh is *advisory* from ``expiry - advisory`` (15 minutes, or a quarter of
  ``life`` when that is shorter) and *mandatory* from ``expiry - mandatory``
  (10 minutes, or a sixth of ``life``);
* with ``jitter``, each refresher starts its advisory refreshes at a random
  moment in the first third of the advisory window, drawn anew for each set of
  credentials, so that a fleet started together does not refresh in step;
* in the advisory window the refresh runs on the process's background thread
  (:mod:`irsa_session._background`) while every caller keeps the current
  credentials (with ``background=False``, or where no thread can start, one
  caller tries once while the others keep them); a failed try waits a
  cooldown (at most a minute, at least five tries per window) before the next;
  credentials no caller asks for in their advisory window are not refreshed;
* in the mandatory window callers wait for one shared refresh, and get its
  error if it fails (one STS call per refresh, not one per waiting caller).
"""

import datetime
import logging
import threading
import time

from . import _background, _events
from .errors import RefreshError

__all__ = ["ADVISORY", "MANDATORY", "JITTER_SHARE", "advisory_span", "windows", "Refresher"]

logger = logging.getLogger("irsa_session.credentials")

#: Refresh starts when less than this many seconds remain (as botocore does)...
ADVISORY = 15 * 60
#: ...and must succeed before less than this many remain.
MANDATORY = 10 * 60
#: With jitter, the advisory start falls in this first part of the advisory window.
JITTER_SHARE = 1.0 / 3
# Short-lived credentials get windows scaled to their life, so that fresh
# credentials are never already due: advisory at 1/4 and mandatory at 1/6 of it.
_ADVISORY_SHARE = 4
_MANDATORY_SHARE = 6
# get_with_life() never asks for more than this share of the credentials' life.
_FRESH_SHARE = 0.9
# Waits between failed advisory refreshes: at most a minute, at least 5 tries.
_COOLDOWN = 60
_TRIES_PER_WINDOW = 5


def advisory_span(life, advisory=ADVISORY):
    """Seconds before expiry that refresh starts, for credentials living ``life``."""
    return min(advisory, life / _ADVISORY_SHARE)


def windows(life, advisory=ADVISORY, mandatory=MANDATORY):
    """``(advisory, mandatory)``: seconds before expiry that each window opens."""
    return advisory_span(life, advisory), min(mandatory, life / _MANDATORY_SHARE)


def _wall_clock():
    return time.time()  # looked up at call time, so freezegun and friends apply


class Refresher(object):
    """Keeps one set of credentials current by calling ``fetch``.

    ``fetch()`` returns an :class:`~irsa_session.sts.Issued`; ``advisory_fetch``
    (default ``fetch``) is used in the advisory window, where a quicker, single
    try suits.  ``freeze(issued)`` makes the snapshot that readers get.
    ``clock()`` returns seconds since the epoch; ``jitter()`` a number in
    [0, 1) (``random.random``), or None for no jitter.  ``background``: make
    advisory refreshes on the background thread, so no caller waits for them.
    Nothing is fetched until :meth:`get` is first called.  While no refresh is
    due, :meth:`get` is one clock call and one comparison.
    """

    def __init__(self, fetch, advisory_fetch=None, freeze=None, clock=_wall_clock, jitter=None,
                 background=False, name="IRSA"):
        self.fetch = fetch
        self.name = name  # what the log lines call these credentials
        self.background = background
        self._pending = False  # a background try is queued or running
        self.advisory_fetch = advisory_fetch or fetch
        self.clock = clock
        self._freeze = freeze or (lambda issued: issued)
        self._jitter = jitter
        self.lock = threading.Lock()
        self.current = None  # the frozen snapshot, None until the first fetch
        self.generation = 0  # counts the sets of credentials stored
        self.account_id = None  # of the current credentials, where the source says
        self.expiry = 0.0
        self.life = 0.0  # seconds the current credentials lived when they were issued
        self._fresh_until = 0.0  # before this, no refresh is due
        self._due_at = 0.0  # from this, a refresh is mandatory
        self._spans = (ADVISORY, MANDATORY)  # of the current credentials
        self._flights = 0  # finished refresh attempts
        self._last_error = None
        self._last_mandatory = False
        self._stale_until = 0.0  # after credentials that arrived expired: no new try before

    def __reduce_ex__(self, protocol):
        raise TypeError("a refresher holds secrets and is not pickled; pickle the session")

    @property
    def refresh_at(self):
        """Seconds since the epoch when the next refresh is due to start, or None."""
        return None if self.current is None else self._fresh_until

    def get(self):
        """The current snapshot, refreshed first when a refresh is due."""
        if self.clock() < self._fresh_until:
            return self.current
        self.refresh()
        return self.current

    def get_with_life(self, seconds):
        """The current snapshot if it has ``seconds`` left, else one refreshed for it.

        For a caller about to use one snapshot for a while (a stream): a refresh it
        needs is made now, once for all callers, as a mandatory one.  Where the
        credentials live less than ``seconds``, nine tenths of their life is
        what is asked for.
        """
        current = self.get()
        # Fresh credentials live ``life``: asking for more than nine tenths of it
        # would refresh at every call and gain nothing.
        wanted = min(seconds, self.life * _FRESH_SHARE)
        if self.expiry - self.clock() >= wanted:
            return current
        try:
            with self.lock:
                if self.expiry - self.clock() < wanted and self.clock() >= self._stale_until:
                    self._attempt(mandatory=True, reason="mandatory")
                return self.current
        finally:
            _events.settle()

    def refresh_expired(self, generation):
        """A service refused set ``generation`` as expired: refresh now, once for every
        caller that saw that set (a later set is taken to be good)."""
        try:
            with self.lock:
                if self.generation == generation and self.clock() >= self._stale_until:
                    self._attempt(mandatory=True, reason="expired-token")
        finally:
            _events.settle()

    def due(self, refresh_in=None):
        """Whether a refresh is due now, or (``refresh_in``) within that many seconds of expiry."""
        if self.current is None:
            return True
        if refresh_in is None:
            return self.clock() >= self._fresh_until
        return self.expiry - self.clock() < refresh_in

    def expired(self):
        return self.current is None or self.clock() >= self.expiry

    def set_expiry(self, expiry):
        """Move the expiry of the current credentials, and the windows with it."""
        if self.current is None:
            return  # nothing fetched yet: the first use fetches anyway
        advisory, mandatory = self._spans
        self.expiry = expiry
        self._due_at = expiry - mandatory
        start = expiry - advisory
        if self._jitter is not None:
            start += self._jitter() * (advisory - mandatory) * JITTER_SHARE
        self._fresh_until = start

    def refresh(self):
        """Refresh if one is due: advisory, in the background (or one caller tries);
        mandatory, all wait for one."""
        try:
            self._refresh_due()
        finally:
            _events.settle()  # the callers' fetch's event reached the subscribers

    def _refresh_due(self):
        now = self.clock()
        if now < self._fresh_until:
            return
        if now < self._due_at:
            if not (self.background and self._in_background()):
                self._advisory_here()
            return
        seen = self._flights
        with self.lock:
            if self.clock() < self._due_at:
                return  # another thread refreshed while this one waited
            if self.clock() < self._stale_until:
                # The last fetch brought expired credentials: fetching again at every
                # use would bring the same, so callers get its error until the cooldown ends.
                raise self._shared_error() from self._last_error
            if self._flights != seen and self._last_error is not None and self._last_mandatory:
                # One STS call per refresh: share the outcome of the one that ran
                # (a mandatory one: an advisory try is a single quick attempt).
                raise self._shared_error() from self._last_error
            self._attempt(mandatory=True, reason="mandatory" if self.current is not None else "first")

    def _shared_error(self):
        """A RefreshError saying what the last fetch's error said, for another caller."""
        return RefreshError(
            str(self._last_error),
            code=getattr(self._last_error, "code", None),
            attempts=getattr(self._last_error, "attempts", 1),
        )

    def _advisory_here(self):
        """One caller tries once, on its own thread; the others go on."""
        if self.lock.acquire(False):
            try:
                if self.clock() >= self._fresh_until:
                    self._attempt(mandatory=False, reason="advisory")
            finally:
                self.lock.release()

    def _in_background(self):
        """Hand the advisory try to the background thread (once); False if none can start."""
        if self._pending:
            return True
        self._pending = True
        try:
            _background.submit(self._background_try)
        except RuntimeError:  # the interpreter is exiting: no new thread
            self._pending = False
            return False
        return True

    def _background_try(self):
        try:
            with self.lock:
                if self.clock() >= self._fresh_until:  # nobody refreshed meanwhile
                    self._attempt(mandatory=False, reason="background")
        finally:
            self._pending = False

    def after_fork(self):
        """In a forked child: a lock of its own, no background try of the parent's, and
        the source's connections dropped."""
        self.lock = threading.Lock()
        self._pending = False
        reset = getattr(self.fetch, "reset", None)
        if reset is not None:
            reset()

    def _attempt(self, mandatory, reason):
        self._last_mandatory = mandatory
        outer = _events.why(reason)  # what the fetch's event says it ran for
        try:
            issued = (self.fetch if mandatory else self.advisory_fetch)()
            self._check_alive(issued)
        except Exception as err:
            self._last_error = err
            self._flights += 1
            if mandatory:
                raise
            now = self.clock()
            self._fresh_until = min(now + self._cooldown(), self._due_at)
            logger.warning(
                "advisory refresh of %s credentials failed; the current ones stay "
                "in use (they expire in %d s) and the next try is in %d s: %s",
                self.name,
                self.expiry - now,
                self._fresh_until - now,
                err,
            )
            return
        finally:
            _events.why(outer)
        self._store(issued)
        self._last_error = None
        self._flights += 1

    def _check_alive(self, issued):
        now = self.clock()
        if issued.expiry > now:
            return
        self._stale_until = now + _COOLDOWN
        raise RefreshError(
            "the credentials fetched (access key %s) had already expired when they arrived: "
            "they expire at %s, and this machine's clock says %s. Either the clock is ahead "
            "(check the node's time synchronisation) or the source handed out stale "
            "credentials; `irsa-session doctor` compares this clock with the source's. No "
            "new fetch for %d s" % (issued.access_key, _iso(issued.expiry), _iso(now), _COOLDOWN),
            code="ExpiredOnArrival",
        )

    def _store(self, issued):
        now = self.clock()
        self.current = self._freeze(issued)
        self.generation += 1
        self.account_id = issued.account_id
        self.life = max(issued.expiry - (issued.issued_at or now), 0.0)
        self._spans = windows(self.life)
        self.set_expiry(issued.expiry)
        logger.info(
            "%s credentials refreshed: access key %s, expires %s, next refresh from %s",
            self.name,
            issued.access_key,
            _iso(self.expiry),
            _iso(self._fresh_until),
        )

    def _cooldown(self):
        advisory, mandatory = self._spans
        return min(_COOLDOWN, max((advisory - mandatory) / _TRIES_PER_WINDOW, 1.0))


def _iso(epoch):
    return datetime.datetime.fromtimestamp(epoch, datetime.timezone.utc).isoformat()
