"""The library's credentials: a refresher fed by a source, as botocore credentials."""

from __future__ import annotations

TYPE_CHECKING = False  # the annotations below are for type checkers; typing is not imported
if TYPE_CHECKING:
    from typing import Any, Callable, Optional

import datetime

from . import _compat, _fork, _refresh
from ._compat import Frozen
from ._refresh import ADVISORY, MANDATORY, advisory_span

__all__ = ["Credentials", "Frozen", "ADVISORY", "MANDATORY", "advisory_span"]


class Credentials(_compat.Refreshable):
    """Credentials that refresh themselves by calling ``fetch``.

    ``fetch()`` returns an :class:`~irsa_session.sts.Issued`.  Nothing is fetched
    until the credentials are first used; when and how they refresh is
    :mod:`irsa_session._refresh`'s rule.  ``advisory_fetch`` (default ``fetch``)
    is used in the advisory window, ``clock`` returns seconds since the epoch,
    ``jitter`` spreads the advisory start and ``background`` makes advisory refreshes
    on the background thread (see :class:`~irsa_session._refresh.Refresher`).
    ``settings`` are what the credentials pickle as, and :attr:`rebuild` (set by the
    layer that builds them) makes them anew from those in the receiving process;
    without both they refuse to pickle.
    """

    #: ``rebuild(settings)``: this process's credentials for ``settings``.
    rebuild = None  # type: Optional[Callable[[Any], Credentials]]

    def __init__(
        self, fetch, clock=_refresh._wall_clock, method="irsa-session", settings=None,
        advisory_fetch=None, jitter=None, background=False,
    ):
        refresher = _refresh.Refresher(
            fetch, advisory_fetch=advisory_fetch, freeze=_compat.freeze, clock=clock, jitter=jitter,
            background=background, name=_source_name(settings),
        )
        super(Credentials, self).__init__(refresher, method)
        self.settings = settings
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
        rebuild = type(self).rebuild
        if self.settings is None or rebuild is None:
            raise TypeError("these credentials were built without settings to rebuild from")
        return rebuild, (self.settings,)

    @property
    def expires_at(self) -> Optional[datetime.datetime]:
        """When the current credentials expire (aware UTC datetime), or None."""
        return self._expiry_time

    @property
    def refresh_at(self) -> Optional[datetime.datetime]:
        """When the next refresh is due to start (aware UTC datetime), or None."""
        when = self._refresher.refresh_at
        return None if when is None else datetime.datetime.fromtimestamp(when, _UTC)

    def frozen_with_life(self, seconds=None):
        """Frozen credentials with at least ``seconds`` left (default half their life),
        refreshed first if need be: for a stream that will sign with them for a while."""
        if seconds is None:
            self._refresher.get()
            seconds = self._refresher.life / 2
        return self._refresher.get_with_life(seconds)

    def _after_fork(self):
        self._refresher.after_fork()


_UTC = datetime.timezone.utc


def _source_name(settings):
    """What log lines call credentials of ``settings``: IRSA, EKS Pod Identity, AssumeRole."""
    if getattr(settings, "full_uri", None) is not None:
        return "EKS Pod Identity"
    if getattr(settings, "external_id", False) is not False:  # a chain's settings
        return "AssumeRole %s" % settings.role_arn
    return "IRSA"
