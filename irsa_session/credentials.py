"""botocore RefreshableCredentials fed by an exchange, with a lock-free fast path."""

import datetime
import logging
import threading
import time

from . import _compat, _fork
from .errors import RefreshError

__all__ = ["Credentials", "Frozen", "ADVISORY", "MANDATORY", "advisory_span"]

logger = logging.getLogger(__name__)

#: Refresh starts when less than this many seconds remain (as botocore does)...
ADVISORY = 15 * 60
#: ...and must succeed before less than this many remain.
MANDATORY = 10 * 60
# Short-lived credentials get windows scaled to their life, so that fresh
# credentials are never already due: advisory at 1/4 and mandatory at 1/6 of it.
_ADVISORY_SHARE = 4
_MANDATORY_SHARE = 6
# Waits between failed advisory refreshes: at most a minute, at least 5 tries.
_COOLDOWN = 60
_TRIES_PER_WINDOW = 5


def advisory_span(life, advisory=ADVISORY):
    """Seconds before expiry that refresh starts, for credentials living ``life``."""
    return min(advisory, life / _ADVISORY_SHARE)


def _wall_clock():
    return time.time()  # looked up at call time, so freezegun and friends apply


class Frozen(_compat.ReadOnlyCredentials):
    """botocore's ReadOnlyCredentials that keep their secrets out of repr and pickle."""

    __slots__ = ()

    def __repr__(self):
        return "ReadOnlyCredentials(access_key=%r, secret_key='****', token='****')" % (
            self.access_key,
        )

    def __reduce_ex__(self, protocol):
        raise TypeError(
            "frozen credentials hold secrets and are not pickled; pickle the "
            "irsa_session session instead: it carries only its settings"
        )

    def __copy__(self):
        return self

    def __deepcopy__(self, memo):
        return self


class Credentials(_compat.RefreshableCredentials):
    """Credentials that refresh themselves by calling ``fetch``.

    ``fetch()`` returns an :class:`~irsa_session.sts.Issued`.  Nothing is fetched
    until the credentials are first used.  While more than the advisory window
    remains, a read is one clock call and one comparison.  In the advisory window
    one thread refreshes while the others keep the current credentials; if it
    fails they keep being served, and the next try waits a cooldown.  In the
    mandatory window callers wait for one shared refresh and get its error if it
    fails.  ``advisory_fetch`` (default ``fetch``) is used in the advisory window,
    where a quicker, single try suits.  ``clock`` returns seconds since the epoch.
    """

    def __init__(
        self, fetch, clock=_wall_clock, method="irsa-session", settings=None, advisory_fetch=None
    ):
        # botocore's own attributes, so its inherited methods keep working.
        self._refresh_using = fetch
        self._advisory_fetch = advisory_fetch or fetch
        self._time_fetcher = lambda: datetime.datetime.fromtimestamp(clock(), _UTC)
        self._refresh_lock = threading.Lock()
        self._access_key = self._secret_key = self._token = None
        self._account_id = None
        self._frozen_credentials = None
        self._advisory_refresh_timeout = ADVISORY
        self._mandatory_refresh_timeout = MANDATORY
        self.method = method
        self.settings = settings
        self._clock = clock
        self._expiry = 0.0
        self._fresh_until = 0.0  # before this, no refresh is due
        self._due_at = 0.0  # from this, a refresh is mandatory
        self._spans = (ADVISORY, MANDATORY)  # of the current credentials
        self._flights = 0  # finished refresh attempts
        self._last_error = None
        self._last_mandatory = False
        _fork.track(self)

    def __repr__(self):
        pod_identity = getattr(self.settings, "full_uri", None)
        if pod_identity is not None:
            what = "pod_identity=%r" % pod_identity
        else:
            what = "role_arn=%r" % (getattr(self.settings, "role_arn", None),)
        return "<irsa_session Credentials %s expires=%s>" % (
            what,
            self.expires_at.isoformat() if self.expires_at else "not yet fetched",
        )

    def __reduce__(self):
        if self.settings is None:
            raise TypeError("these credentials were built without settings to rebuild from")
        from .sessions import _credentials_for

        return _credentials_for, (self.settings,)

    @property
    def _expiry_time(self):
        """botocore's name for the expiry; code that sets it moves the windows too."""
        if self._frozen_credentials is None:
            return None
        return datetime.datetime.fromtimestamp(self._expiry, _UTC)

    @_expiry_time.setter
    def _expiry_time(self, when):
        if self._frozen_credentials is None:
            return  # nothing fetched yet: the first use fetches anyway
        if when.tzinfo is None:
            when = when.replace(tzinfo=_UTC)
        self._set_expiry((when - _EPOCH).total_seconds())

    @property
    def expires_at(self):
        """When the current credentials expire (aware UTC datetime), or None."""
        return self._expiry_time

    @property
    def refresh_at(self):
        """When the next refresh is due to start (aware UTC datetime), or None."""
        if self._frozen_credentials is None:
            return None
        return datetime.datetime.fromtimestamp(self._fresh_until, _UTC)

    def get_frozen_credentials(self):
        if self._clock() < self._fresh_until:
            return self._frozen_credentials
        self._refresh()
        return self._frozen_credentials

    def refresh_needed(self, refresh_in=None):
        if self._frozen_credentials is None:
            return True
        if refresh_in is None:
            return self._clock() >= self._fresh_until
        return self._expiry - self._clock() < refresh_in

    def _is_expired(self):
        return self._frozen_credentials is None or self._clock() >= self._expiry

    def _refresh(self):
        now = self._clock()
        if now < self._fresh_until:
            return
        if now < self._due_at:
            # Advisory: one thread tries; the rest keep the current credentials.
            if self._refresh_lock.acquire(False):
                try:
                    if self._clock() >= self._fresh_until:
                        self._attempt(mandatory=False)
                finally:
                    self._refresh_lock.release()
            return
        seen = self._flights
        with self._refresh_lock:
            if self._clock() < self._due_at:
                return  # another thread refreshed while this one waited
            if self._flights != seen and self._last_error is not None and self._last_mandatory:
                # One STS call per refresh: share the outcome of the one that ran
                # (a mandatory one: an advisory try is a single quick attempt).
                raise RefreshError(
                    str(self._last_error),
                    code=getattr(self._last_error, "code", None),
                    attempts=getattr(self._last_error, "attempts", 1),
                ) from self._last_error
            self._attempt(mandatory=True)

    def _attempt(self, mandatory):
        self._last_mandatory = mandatory
        try:
            issued = (self._refresh_using if mandatory else self._advisory_fetch)()
        except Exception as err:
            self._last_error = err
            self._flights += 1
            if mandatory:
                raise
            now = self._clock()
            self._fresh_until = min(now + self._cooldown(), self._due_at)
            logger.warning(
                "advisory refresh of IRSA credentials failed; the current ones stay "
                "in use (they expire in %d s) and the next try is in %d s: %s",
                self._expiry - now,
                self._fresh_until - now,
                err,
            )
            return
        self._store(issued)
        self._last_error = None
        self._flights += 1

    def _store(self, issued):
        now = self._clock()
        life = max(issued.expiry - (issued.issued_at or now), 0.0)
        frozen = Frozen(issued.access_key, issued.secret_key, issued.token)
        if _compat.HAS_ACCOUNT_ID:
            frozen = frozen._replace(account_id=issued.account_id)
        self._access_key = issued.access_key
        self._secret_key = issued.secret_key
        self._token = issued.token
        self._account_id = issued.account_id
        self._frozen_credentials = frozen
        self._spans = (
            advisory_span(life, self._advisory_refresh_timeout),
            min(self._mandatory_refresh_timeout, life / _MANDATORY_SHARE),
        )
        self._set_expiry(issued.expiry)
        logger.info(
            "IRSA credentials refreshed: access key %s, expires %s, next refresh from %s",
            issued.access_key,
            self.expires_at.isoformat(),
            self.refresh_at.isoformat(),
        )

    def _set_expiry(self, expiry):
        advisory, mandatory = self._spans
        self._expiry = expiry
        self._due_at = expiry - mandatory
        self._fresh_until = expiry - advisory

    def _cooldown(self):
        advisory, mandatory = self._spans
        return min(_COOLDOWN, max((advisory - mandatory) / _TRIES_PER_WINDOW, 1.0))

    def _after_fork(self):
        self._refresh_lock = threading.Lock()
        reset = getattr(self._refresh_using, "reset", None)
        if reset is not None:
            reset()


_UTC = datetime.timezone.utc
_EPOCH = datetime.datetime(1970, 1, 1, tzinfo=_UTC)
