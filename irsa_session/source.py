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
import time
from collections import namedtuple

from . import _redact

__all__ = [
    "Issued", "RetryPolicy", "DEFAULT_RETRY", "CONNECT_TIMEOUT", "READ_TIMEOUT", "Source",
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
    """

    def __init__(self, settings, retry=DEFAULT_RETRY, sleep=time.sleep, rand=None, monotonic=time.monotonic):
        self.settings = settings
        self.calls = 0  # requests made
        self.last_date = None  # the Date header of the last answer (for clock-skew checks)
        self._retry = retry
        self._sleep = sleep
        self._rand = rand or random
        self._monotonic = monotonic

    def reset(self):
        """Forget clients and connections (after a fork they belong to the parent)."""

    def __call__(self, attempts=None):
        """One fetch; ``attempts`` caps the tries below the retry policy's."""
        limit = min(attempts or self._retry.attempts, self._retry.attempts)
        started = self._monotonic()
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
            if verdict == RETRY and attempt < limit:
                self._sleep(self._retry.delay(attempt, self._rand))
                continue
            failure = self._failure(failed, prepared, attempt, self._monotonic() - started)
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
