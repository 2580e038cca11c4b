"""What a credential source is, and the one retry loop that every source runs.

A *source* (IRSA's :class:`~irsa_session.sts.Exchange`, EKS Pod Identity's
:class:`~irsa_session.pod_identity.Agent`, AssumeRole's
:class:`~irsa_session.chain.AssumeRole`) follows this small protocol, and so
does the node cache (:class:`~irsa_session.cache.NodeCache`) that can stand in
front of any of them:

``source(attempts=None)``
    One fetch: returns :class:`Issued`, or raises an
    :class:`~irsa_session.errors.IrsaError` that says what to fix.  Transient
    failures are retried with :class:`RetryPolicy`'s waits; ``attempts`` caps the
    tries (1 in the advisory window, where valid credentials are still in hand).
``source.reset()``
    Called in a forked child: forget clients and connections (they are the
    parent's).
``source.settings``
    The hashable settings it was built from, with no secret in them: what
    sessions and credentials pickle as.

:class:`Source` is the base that runs the loop; each source says how one try
goes and what its failures mean.
"""

import datetime
import os
import threading
import time
from collections import namedtuple

from . import _events, _redact
from .errors import ConfigError, RefreshError

__all__ = [
    "Issued", "RetryPolicy", "DEFAULT_RETRY", "CONNECT_TIMEOUT", "READ_TIMEOUT", "Source",
    "DEADLINE", "DEFAULT_DEADLINE", "deadline_setting",
    "odd_value", "safe_cause", "is_parse_error", "epoch", "random", "RETRY", "AGAIN", "FAIL",
]

Issued = namedtuple(
    "Issued", "access_key secret_key token expiry account_id issued_at", defaults=(None,)
)
Issued.__doc__ = "Credentials STS issued; times in seconds since the epoch."


def _issued_repr(issued):
    return "Issued(access_key=%r, expiry=%r)" % (issued.access_key, issued.expiry)


Issued.__repr__ = _issued_repr  # type: ignore[assignment,method-assign]


class RetryPolicy(namedtuple("RetryPolicy", "attempts base cap")):
    """At most ``attempts`` calls; waits double from ``base`` up to ``cap`` seconds.

    Each wait is drawn between half and all of its step (jitter), so the total
    wait is at most :attr:`budget`.
    """

    __slots__ = ()

    def delay(self, attempt, rand):
        """The wait after failed attempt number ``attempt`` (1-based)."""
        step = min(self.cap, self.base * 2 ** (attempt - 1))
        return step / 2 + rand() * step / 2

    @property
    def budget(self):
        """The longest total wait between the first and the last attempt."""
        return sum(min(self.cap, self.base * 2 ** n) for n in range(self.attempts - 1))


#: 6 attempts, waits of 0.5, 1, 2, 4 and 8 s at most: 15.5 s in all.
DEFAULT_RETRY = RetryPolicy(attempts=6, base=0.5, cap=8.0)
CONNECT_TIMEOUT = 5
READ_TIMEOUT = 10

#: The environment variable that sets the deadline of a fetch, in seconds...
DEADLINE = "IRSA_SESSION_DEADLINE"
#: ...by default 30: however its attempts hang, a fetch gives up within it.
DEFAULT_DEADLINE = 30.0
_DEADLINE_RANGE = (20.0, 3600.0)  # at least one whole attempt and a retry fit

# The absolute (monotonic) deadline of the fetch this thread is inside, if any: a
# chain's hop that refreshes its source on the way shares one deadline with it.
_inside = threading.local()


def deadline_setting(environ=None):
    """Seconds a fetch may take, from ``IRSA_SESSION_DEADLINE`` (default 30)."""
    env = os.environ if environ is None else environ
    raw = env.get(DEADLINE, "").strip()
    if not raw:
        return DEFAULT_DEADLINE
    try:
        value = float(raw)
    except ValueError:
        value = None
    if value is None or not _DEADLINE_RANGE[0] <= value <= _DEADLINE_RANGE[1]:
        raise ConfigError(
            "%s=%r is not a number of seconds from %d to %d: the longest a fetch of "
            "credentials may take, retries included (default %d)"
            % (DEADLINE, raw, _DEADLINE_RANGE[0], _DEADLINE_RANGE[1], DEFAULT_DEADLINE)
        )
    return value


#: What a failed try leads to (``Source._verdict``): a wait and another try...
RETRY = "retry"
#: ...another try at once (the failure is already resolved, e.g. a re-read token)...
AGAIN = "again"
#: ...or the error (``Source._failure``) is raised.
FAIL = "fail"


class Source(object):
    """The retry loop of every source; subclasses fill in the steps of one try.

    ``_prepare(state)`` runs before each try, outside the error handling (a token
    that cannot be read raises as it is); ``_try(prepared)`` makes the request;
    ``_verdict(err, state)`` sorts a failure (:data:`RETRY`, :data:`AGAIN` or
    :data:`FAIL`); ``_failure(err, prepared, attempts, elapsed)`` makes the error to
    raise (``err`` itself to raise it as it is), chained to ``_cause(err)``.
    Time (``sleep``, ``monotonic``) and randomness (``rand``) are injectable.

    A fetch gives up within ``deadline`` seconds (default :func:`deadline_setting`),
    however its attempts hang: another attempt starts only if its wait and
    ``attempt_timeout`` (the longest one attempt can take: connecting and
    reading) still fit.  A fetch made inside another on the same thread (a
    chain's source, refreshed to sign the hop) keeps to the outer deadline too.
    """

    #: The longest one attempt can take (connect and read timeouts).
    attempt_timeout = CONNECT_TIMEOUT + READ_TIMEOUT
    #: What its events (:mod:`irsa_session._events`) call this source.
    kind = "IRSA"

    def __init__(self, settings, retry=DEFAULT_RETRY, sleep=time.sleep, rand=None, monotonic=time.monotonic,
                 deadline=None):
        self.settings = settings
        self.calls = 0  # requests made
        self.last_date = None  # the Date header of the last answer (for clock-skew checks)
        self._retry = retry
        self._sleep = sleep
        self._rand = rand or random
        self._monotonic = monotonic
        self.deadline = deadline_setting() if deadline is None else deadline

    def reset(self):
        """Forget clients and connections (after a fork they belong to the parent)."""

    def __call__(self, attempts=None):
        """One fetch; ``attempts`` caps the tries below the retry policy's."""
        started = self._monotonic()
        outer = getattr(_inside, "deadline", None)
        deadline = started + self.deadline
        if outer is not None and outer < deadline:
            deadline = outer
        _inside.deadline = deadline
        calls = self.calls
        try:
            issued = self._fetch_by(deadline, attempts, started)
        except Exception as err:
            failed = err
        else:
            _events.emit(self.kind, self.settings, "ok", self._monotonic() - started, self.calls - calls,
                         issued.expiry)
            return issued
        finally:
            _inside.deadline = outer
        _events.emit(self.kind, self.settings, _events.result_of(failed), self._monotonic() - started,
                     self.calls - calls, None)
        # The frames the error passed through hold the token, the answer and the
        # request in their locals, which error trackers print: none goes along.
        _forget_frames(failed)
        raise failed.with_traceback(None)

    def _fetch_by(self, deadline, attempts, started):
        limit = min(attempts or self._retry.attempts, self._retry.attempts)
        state = {}
        attempt = 0
        while True:
            attempt += 1
            prepared = self._prepare(state)
            try:
                return self._try(prepared)
            except Exception as err:  # sorted below; nothing unknown is retried
                failed = err
            # Out of the handler: the error raised below must not carry ``failed``
            # (which may quote the answer, keys included) as its __context__.
            verdict = self._verdict(failed, state)
            if verdict == AGAIN:
                continue
            out_of_time = False
            if verdict == RETRY and attempt < limit:
                wait = self._retry.delay(attempt, self._rand)
                if self._monotonic() + wait + self.attempt_timeout <= deadline:
                    self._sleep(wait)
                    continue
                out_of_time = True
            elapsed = self._monotonic() - started
            failure = self._failure(failed, prepared, attempt, elapsed)
            if out_of_time and isinstance(failure, RefreshError):
                failure = RefreshError(
                    "%s; gave up there: another attempt would not end within the %g s a "
                    "fetch may take (%s)" % (failure, self.deadline, DEADLINE),
                    code=failure.code, attempts=failure.attempts,
                )
            if failure is failed:
                raise failure
            raise failure from self._cause(failed)

    def _prepare(self, state):
        return None

    def _try(self, prepared):
        raise NotImplementedError

    def _verdict(self, err, state):
        raise NotImplementedError

    def _failure(self, err, prepared, attempts, elapsed):
        raise NotImplementedError

    def _cause(self, err):
        return safe_cause(err)


_KEY_ID_CHARS = frozenset("ABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789")
_BASE64_CHARS = frozenset(
    "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/="
)


def _forget_frames(err):
    """Drop the tracebacks of ``err``'s causes and contexts (their frames' locals)."""
    seen, todo = [], [err.__cause__, err.__context__]
    while todo:
        linked = todo.pop()
        if linked is None or any(linked is each for each in seen):
            continue
        seen.append(linked)
        linked.__traceback__ = None
        todo += [linked.__cause__, linked.__context__]


def odd_value(access_key, secret_key, session_token):
    """What is wrong with credential values STS could not have issued, else None.

    Access key ids are upper-case letters and digits; secret keys and session
    tokens base64 characters.  Anything else (a newline, a quote, a space) would
    be a forged or garbled answer, and could inject lines where the values are
    written out.  The text never quotes a value.
    """
    for name, value, chars, shortest in (
        ("an access key id", access_key, _KEY_ID_CHARS, 16),
        ("a secret access key", secret_key, _BASE64_CHARS, 16),
        ("a session token", session_token, _BASE64_CHARS, 16),
    ):
        if not isinstance(value, str) or len(value) < shortest or not chars.issuperset(value):
            return "%s that is not %d or more of the characters STS uses" % (name, shortest)
    return None


def safe_cause(err):
    """``err`` if nothing in it or its chain can quote a secret, else None.

    A garbled answer's parser error quotes the raw body (keys included); any
    error whose text the scrubber changes would show a secret in a traceback.
    """
    seen = err
    while seen is not None:
        if is_parse_error(seen) or _redact.scrub(str(seen)) != str(seen):
            return None
        seen = seen.__cause__ or seen.__context__
    return err


def is_parse_error(err):
    return any("Parse" in cls.__name__ for cls in type(err).__mro__)


_EPOCH = datetime.datetime(1970, 1, 1, tzinfo=datetime.timezone.utc)


def epoch(value):
    """Seconds since the epoch of botocore's parsed timestamp (or an ISO string)."""
    if isinstance(value, str):
        from botocore.utils import parse_timestamp

        value = parse_timestamp(value)
    if value.tzinfo is None:
        value = value.replace(tzinfo=datetime.timezone.utc)
    return (value - _EPOCH).total_seconds()


def random():
    import random as _module  # imported on the first retry, not at start-up

    return _module.random()
