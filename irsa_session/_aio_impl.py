"""The aiobotocore classes: async credentials over the shared ones, a provider, a session.

Imported only when aiobotocore is used (``_aio`` imports it on demand).
"""

import asyncio
import threading

from aiobotocore.credentials import AioCredentialResolver, AioRefreshableCredentials
from aiobotocore.session import AioSession
from botocore.credentials import CredentialProvider

from . import _compat, _expired, _fork, sessions

__all__ = ["AioCredentials", "Provider", "Session", "view", "for_session", "join_chain"]


async def _in_thread(function):
    """``function()`` in a worker thread, awaited without blocking the event loop."""
    try:
        loop = asyncio.get_running_loop()
    except RuntimeError:  # not asyncio: trio, through anyio (aiobotocore's httpx backend)
        import anyio.to_thread

        return await anyio.to_thread.run_sync(function)
    return await loop.run_in_executor(None, function)


class AioCredentials(AioRefreshableCredentials):
    """The library's credentials as aiobotocore awaits them.

    A view of one :class:`irsa_session.credentials.Credentials`, the object that
    boto3 sessions use too: their refresh windows, their lock (one STS call per
    refresh, shared with boto3) and their fork handling apply.  While no
    refresh is due a read is one clock call on the event loop; when one is
    due, the refresh (STS I/O, retries and their sleeps) runs in a worker
    thread.  Like aiobotocore's own, the ``access_key``-style properties are
    not available: await ``get_frozen_credentials()``.
    """

    def __init__(self, credentials):
        # aiobotocore's base keeps a lock and expiry of its own: not wanted here.
        self._irsa = credentials
        self.method = credentials.method

    def __repr__(self):
        return repr(self._irsa).replace("Credentials", "AioCredentials", 1)

    def __reduce__(self):
        # The library's credentials pickle as their settings (a chain's as the whole chain's).
        return view, (self._irsa,)

    @property
    def settings(self):
        return self._irsa.settings

    @property
    def expires_at(self):
        return self._irsa.expires_at

    @property
    def refresh_at(self):
        return self._irsa.refresh_at

    @property
    def _frozen_credentials(self):
        return self._irsa._refresher.current

    @property
    def _expiry_time(self):
        return self._irsa._expiry_time

    def refresh_needed(self, refresh_in=None):
        return self._irsa.refresh_needed(refresh_in)

    def _is_expired(self):
        return self._irsa._is_expired()

    async def _refresh(self):
        if self._irsa.refresh_needed():
            await _in_thread(self._irsa.get_frozen_credentials)

    async def get_frozen_credentials(self):
        if not self._irsa.refresh_needed():
            return self._irsa._refresher.current
        return await _in_thread(self._irsa.get_frozen_credentials)

    async def get_access_key(self):
        return (await self.get_frozen_credentials()).access_key

    async def get_secret_key(self):
        return (await self.get_frozen_credentials()).secret_key

    async def get_token(self):
        return (await self.get_frozen_credentials()).token

    async def get_account_id(self):
        await self._refresh()
        return self._irsa._refresher.account_id


class Provider(CredentialProvider):
    """A link in aiobotocore's chain that hands out one AioCredentials object."""

    METHOD = "irsa-session"
    CANONICAL_NAME = "irsa-session"

    def __init__(self, credentials):
        super(Provider, self).__init__()
        self._credentials = credentials

    async def load(self):
        return self._credentials


class _Sessions(object):
    """One aio session per effective settings, over the registry's credentials.

    Its lock (re-entrant, made anew after a fork) also guards making views.
    """

    def __init__(self):
        self.lock = threading.RLock()
        self.by_settings = {}
        _fork.track(self)

    def _after_fork(self):
        self.lock = threading.RLock()


_sessions = _Sessions()


def view(credentials):
    """The one AioCredentials over ``credentials`` (made on first need)."""
    found = credentials.__dict__.get("_irsa_aio_view")
    if found is None:
        with _sessions.lock:
            found = credentials.__dict__.get("_irsa_aio_view")
            if found is None:
                found = AioCredentials(credentials)
                credentials._irsa_aio_view = found
    return found


class Session(AioSession):
    """An aiobotocore session on a library session's credentials; pickles as that session."""

    def __init__(self, source=None, region_name=None):
        super(Session, self).__init__()
        _compat.share_data(self)
        credentials = None if source is None else source._irsa_credentials
        if credentials is not None:
            self.register_component(
                "credential_provider",
                AioCredentialResolver(providers=[Provider(view(credentials))]),
            )
            _expired.watch(self, credentials, aio=True)
        if region_name:
            self.set_config_variable("region", region_name)
        self._irsa_source = source if credentials is not None else None
        self._irsa_region = region_name

    @property
    def _irsa_settings(self):
        return None if self._irsa_source is None else self._irsa_source._irsa_settings

    def __repr__(self):
        # Each session its own repr: fsspec keys its instance cache on str(arguments).
        if self._irsa_source is None:
            return "<IrsaAioSession fallback=True region_name=%r at %#x>" % (
                self._irsa_region,
                id(self),
            )
        return "<IrsaAioSession %r at %#x>" % (self._irsa_source, id(self))

    def __reduce__(self):
        return restore, (self._irsa_source,)


def for_session(source):
    """The aio session over ``source``'s credentials (one per credentials object);
    aiobotocore's default chain where ``source`` is the library's fallback."""
    credentials = source._irsa_credentials
    if credentials is None:
        return fallback_session(source.region_name)
    found = _sessions.by_settings.get(id(credentials))
    if found is not None and found[0] is credentials:
        return found[1]
    with _sessions.lock:
        found = _sessions.by_settings.get(id(credentials))
        if found is None or found[0] is not credentials:
            found = (credentials, Session(source, region_name=source.region_name))
            _sessions.by_settings[id(credentials)] = found
        return found[1]


def restore(source):
    """Unpickle an aio session: ``source`` arrives rebuilt from its settings, with this
    process's own credentials; a fallback's environment is this process's."""
    return for_session(sessions.current_session() if source is None else source)


def fallback_session(region_name):
    """A new session on aiobotocore's default chain (which install() may have joined)."""
    return Session(region_name=region_name)


def join_chain(resolver, credentials, session):
    """Put the library's provider in a resolver that aiobotocore just built for ``session``.

    It goes where ``_compat.place_provider`` puts botocore's: environment keys
    and a chosen profile still win; container and instance metadata come after.
    """
    _compat.place_provider(resolver.providers, Provider(view(credentials)), session)
    _expired.watch(session, credentials, aio=True)
