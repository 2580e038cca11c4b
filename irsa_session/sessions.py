"""The public factories, the session class, and the process-wide registry."""

from __future__ import annotations

TYPE_CHECKING = False  # the annotations below are for type checkers; typing is not imported
if TYPE_CHECKING:
    from typing import Any, Optional, Sequence

import functools
import logging
import random
import threading

import boto3
import boto3.session
import botocore.session

from . import _compat, _expired, _fork, _redact, config
from .credentials import Credentials
from .errors import ConfigError
from .sts import Exchange

__all__ = [
    "Session",
    "assumed_role_session",
    "refreshable_credentials",
    "install_credentials",
    "default_session",
    "resolve_source",
    "current_session",
    "pod_identity_session",
]

logger = logging.getLogger("irsa_session")

_CLIENTS_PER_SESSION = 64


class Session(boto3.session.Session):
    """A boto3 Session that is safe to share between threads, forks and pickles.

    ``client()`` returns one cached client per identical arguments and, like
    ``resource()``, may be called from many threads at once.  Pickling keeps only
    the settings: the receiving process builds its own credentials.
    """

    def __init__(self, settings=None, credentials=None, region_name=None):
        botocore_session = botocore.session.get_session()
        _compat.share_data(botocore_session)
        if credentials is not None:
            _compat.use_credentials(botocore_session, credentials)
            _compat.offer_for_sts(botocore_session)
            _expired.watch(botocore_session, credentials)
        else:
            # The fallback resolves botocore's own chain, never what install() put in
            # it: a chain signed with this session would otherwise sign with itself.
            setattr(botocore_session, _compat.OWN_CHAIN, True)
            _warn_if_none(botocore_session)
        super(Session, self).__init__(
            botocore_session=botocore_session, region_name=region_name
        )
        self._irsa_settings = settings
        self._irsa_credentials = credentials
        self._irsa_lock = threading.RLock()
        _fork.track(self)

    def __repr__(self):
        if self._irsa_settings is None:
            return "IrsaSession(fallback=True, region_name=%r)" % (self.region_name,)
        if isinstance(self._irsa_settings, config.PodIdentitySettings):
            return "IrsaSession(pod_identity=%r, region_name=%r)" % (
                self._irsa_settings.full_uri,
                self.region_name,
            )
        return "IrsaSession(role_arn=%r, session_name=%r, region_name=%r)" % (
            self._irsa_settings.role_arn,
            self._irsa_settings.session_name,
            self.region_name,
        )

    def __reduce__(self):
        return _restore, (self._irsa_settings,)

    @property
    def _irsa_clients(self):
        """The client cache, made on first need (cachetools is imported only then)."""
        clients = self.__dict__.get("_irsa_client_cache")
        if clients is None:
            clients = self._irsa_client_cache = _compat.lru_cache(_CLIENTS_PER_SESSION)
        return clients

    def client(self, *args: Any, **kwargs: Any) -> Any:
        """Like ``boto3.Session.client``, cached per identical arguments."""
        key = _compat.client_key(args, kwargs)
        with self._irsa_lock:
            if key is None:
                return super(Session, self).client(*args, **kwargs)
            client = self._irsa_clients.get(key)
            if client is None:
                client = super(Session, self).client(*args, **kwargs)
                self._irsa_clients[key] = client
            return client

    def resource(self, *args: Any, **kwargs: Any) -> Any:
        """Like ``boto3.Session.resource``; a new resource over the cached client."""
        with self._irsa_lock:
            return super(Session, self).resource(*args, **kwargs)

    def _after_fork(self):
        self._irsa_lock = threading.RLock()
        self.__dict__.pop("_irsa_client_cache", None)  # their connections are the parent's


class _Registry(object):
    """One credentials object and one session per effective settings, per process."""

    def __init__(self):
        self.lock = threading.Lock()
        self.credentials = {}
        self.sessions = {}
        self.fallback_logged = False
        self.none_warned = False
        self.default = None
        self.boto3_default = None  # the boto3.DEFAULT_SESSION that install() made
        self.installed = None  # the credentials that install() put in the default chain
        self.installed_session = None  # the session whose credentials they are
        self.source_logged = False
        _fork.track(self)

    def clear(self):
        with self.lock:
            self.credentials.clear()
            self.sessions.clear()
            self.fallback_logged = False
            self.none_warned = False
            self.default = None
            self.boto3_default = None
            self.installed = None
            self.installed_session = None
            self.source_logged = False

    def _after_fork(self):
        self.lock = threading.Lock()


_registry = _Registry()


def _credentials_for(settings):
    found = _registry.credentials.get(settings)
    if found is not None:
        return found
    with _registry.lock:
        found = _registry.credentials.get(settings)
        if found is None:
            if isinstance(settings, config.PodIdentitySettings):
                from .pod_identity import Agent  # only pods that use it load it

                fetch = Agent(settings)
            else:
                fetch = Exchange(settings)
            if settings.cache_dir is not None:
                from . import cache  # only those who opt in pay for its imports

                if cache.available():
                    fetch = cache.NodeCache(fetch, settings.cache_dir)
            # Valid credentials are still in hand in the advisory window: one
            # try there, and the cooldown spaces the next; no retry sleeps.
            found = Credentials(
                fetch, settings=settings, advisory_fetch=functools.partial(fetch, attempts=1),
                jitter=random.random, background=True,
            )
            _registry.credentials[settings] = found
        return found


# Credentials pickle as their settings; the receiving process gets its own.  (Not
# copyreg: its table outlives the modules at exit, and a function in it keeps this
# module, and botocore behind it, alive into the interpreter's slow clean-up.)
Credentials.rebuild = _credentials_for


def _warn_if_none(botocore_session):
    """Where botocore's own chain finds no credentials either, say once where to look:
    its own ``NoCredentialsError`` names no cause."""
    find = botocore_session.get_credentials

    def get_credentials():
        credentials = find()
        if credentials is None and not _registry.none_warned:
            _registry.none_warned = True
            logger.warning(
                "no credentials: neither IRSA nor EKS Pod Identity is configured in this "
                "process, and boto3's default chain found none either (requests will fail "
                "with NoCredentialsError); run `irsa-session doctor` to see what the pod has"
            )
        return credentials

    botocore_session.get_credentials = get_credentials


def _session_for(settings):
    real = isinstance(settings, config.PodIdentitySettings) or settings.role_arn is not None
    key = settings if real else ("fallback", settings.region_name)
    found = _registry.sessions.get(key)
    if found is not None:
        return found
    credentials = _credentials_for(settings) if real else None
    with _registry.lock:
        found = _registry.sessions.get(key)
        if found is None:
            _redact.install()
            found = Session(
                settings if credentials is not None else None,
                credentials,
                region_name=settings.region_name,
            )
            _registry.sessions[key] = found
        return found


def _restore(settings):
    """Unpickle a session: same settings, this process's own credentials."""
    if settings is None:
        return default_session()
    return _session_for(settings)


def given(arguments):
    """The settings of :func:`config.resolve` among a factory's ``locals()`` (on entry)."""
    return dict((name, arguments[name]) for name in config.OPTIONS if name in arguments)


def refreshable_credentials(
    role_arn: Optional[str] = None,
    token_file: Optional[str] = None,
    *,
    session_name: Optional[str] = None,
    region_name: Optional[str] = None,
    duration_seconds: Optional[int] = None,
    sts_endpoint_url: Optional[str] = None,
    policy: Optional[str] = None,
    policy_arns: Optional[Sequence[str]] = None
) -> Credentials:
    """Return IRSA credentials as a botocore ``RefreshableCredentials``.

    For code that builds its own botocore session
    (``botocore_session._credentials = refreshable_credentials()``, or a
    credential provider).  Arguments and their environment variables are those
    of :func:`assumed_role_session`.  Nothing is read or fetched until the
    credentials are first used; the same settings give the same object.

    Raises:
        ConfigError: a setting is missing or invalid (there is no fallback).
    """
    settings = config.resolve(**given(locals()))
    absent = config.missing(settings)
    if absent:
        raise ConfigError(_missing_message(absent), absent)
    return _credentials_for(settings)


def assumed_role_session(
    role_arn: Optional[str] = None,
    token_file: Optional[str] = None,
    *,
    session_name: Optional[str] = None,
    region_name: Optional[str] = None,
    duration_seconds: Optional[int] = None,
    sts_endpoint_url: Optional[str] = None,
    policy: Optional[str] = None,
    policy_arns: Optional[Sequence[str]] = None,
    fallback: bool = True,
    cache_dir: Optional[str] = None
) -> Session:
    """Return a ``boto3.session.Session`` whose credentials come from IRSA.

    Credentials come from STS ``AssumeRoleWithWebIdentity``, are fetched when
    first needed and refresh themselves.  The same effective settings in one
    process give the same session and credentials, so calling this in every
    task costs no STS call.

    Args:
        role_arn: role to assume; default ``AWS_ROLE_ARN``.
        token_file: absolute path of the token; default ``AWS_WEB_IDENTITY_TOKEN_FILE``.
        session_name: default ``AWS_ROLE_SESSION_NAME``, else the host name;
            sanitised to STS's rules.
        region_name: default ``AWS_REGION``, then ``AWS_DEFAULT_REGION``; picks
            the regional STS endpoint and the session's region.
        duration_seconds: 900 to 43200; default STS's (3600).
        sts_endpoint_url: default ``AWS_ENDPOINT_URL_STS``, then
            ``AWS_ENDPOINT_URL``, else ``https://sts.<region>.<dns suffix>``.
        policy: a session policy, as a JSON string.
        policy_arns: managed-policy ARNs (a list of strings).
        fallback: with no role ARN or token file, return a session on boto3's
            default credential chain (and log why, once) instead of raising.
        cache_dir: default ``IRSA_SESSION_CACHE_DIR``; an absolute directory
            where processes on one node share credentials, so one of them calls
            STS per refresh (opt-in; see README "Node-wide cache").

    Raises:
        ConfigError: an invalid setting, or a missing one with ``fallback=False``.
    """
    settings = config.resolve(**given(locals()))
    if not complete(settings, fallback):
        return _session_for(settings._replace(role_arn=None, token_file=None))
    return _session_for(settings)


def complete(settings, fallback):
    """Whether IRSA ``settings`` are complete; if not, raise or (``fallback``) log why once."""
    absent = config.missing(settings)
    if absent and not fallback:
        raise ConfigError(_missing_message(absent), absent)
    if absent:
        _log_fallback(absent)
    return not absent


def pod_identity_session(
    *,
    full_uri: Optional[str] = None,
    token_file: Optional[str] = None,
    region_name: Optional[str] = None,
    cache_dir: Optional[str] = None
) -> Session:
    """Return a ``boto3.session.Session`` whose credentials come from EKS Pod Identity.

    The credentials are fetched from the node's Pod Identity agent when first
    needed and refresh themselves, on every botocore (botocore itself supports
    Pod Identity only from 1.34.41).  The token file is read at every fetch.
    The same settings in one process give the same session.

    Args:
        full_uri: the agent's URL; default ``AWS_CONTAINER_CREDENTIALS_FULL_URI``,
            else ``AWS_CONTAINER_CREDENTIALS_RELATIVE_URI`` on 169.254.170.2.  Plain
            http only to the agent's and ECS's link-local addresses or loopback.
        token_file: default ``AWS_CONTAINER_AUTHORIZATION_TOKEN_FILE``; without
            one, ``AWS_CONTAINER_AUTHORIZATION_TOKEN`` (read at each fetch).
        region_name: default ``AWS_REGION``, then ``AWS_DEFAULT_REGION``.
        cache_dir: default ``IRSA_SESSION_CACHE_DIR``; see README "Node-wide cache".

    With no agent URL set, returns a session on boto3's default chain and logs
    why once, as :func:`assumed_role_session` does.

    Raises:
        ConfigError: an invalid setting (a URL the token must not go to...).
    """
    settings = config.resolve_pod_identity(full_uri, token_file, region_name, cache_dir)
    if settings is None:
        if not _registry.fallback_logged:
            _registry.fallback_logged = True
            logger.info(
                "EKS Pod Identity is not configured: %s and %s are unset; using boto3's "
                "default credential chain instead",
                config.CONTAINER_FULL_URI, config.CONTAINER_RELATIVE_URI,
            )
        fallback = config.resolve(region_name=region_name)
        return _session_for(fallback._replace(role_arn=None, token_file=None))
    return _session_for(settings)


def resolve_source(**kwargs):
    """The library's session for these arguments: where its credentials come from.

    The one function through which every entry point (``session``, ``install()``,
    ``aio_session()``, ``arrow_filesystem()``, the command line) resolves the
    source: IRSA when configured, else EKS Pod Identity when configured, else
    boto3's default chain (or ConfigError, with ``fallback=False``).  IRSA wins
    when both are set; which one is used is logged once.  ``kwargs`` are
    :func:`assumed_role_session`'s; a chained role (``install(assume_role=)``,
    ``--assume-role``) is assumed from what this returns.
    """
    settings = config.resolve(**given(kwargs))
    irsa = not config.missing(settings)
    pod_identity = None
    if not irsa or not _registry.source_logged:
        try:
            pod_identity = config.resolve_pod_identity(
                region_name=kwargs.get("region_name"), cache_dir=kwargs.get("cache_dir")
            )
        except ConfigError:
            if not irsa:
                raise  # the source to be used is misconfigured
    if irsa:
        if pod_identity is not None and not _registry.source_logged:
            logger.info(
                "both IRSA (%s) and EKS Pod Identity (%s) are configured; using IRSA",
                config.ROLE_ARN, config.CONTAINER_FULL_URI,
            )
        _registry.source_logged = True
        return assumed_role_session(**kwargs)
    if pod_identity is not None:
        if not _registry.source_logged:
            _registry.source_logged = True
            logger.info("using EKS Pod Identity: the agent at %s", config.shown_url(pod_identity.full_uri))
        return _session_for(pod_identity)
    return assumed_role_session(**kwargs)


def default_session() -> Session:
    """The process-wide session behind ``irsa_session.session``: IRSA, else Pod Identity."""
    found = _registry.default
    if found is None:
        found = resolve_source()
        _registry.default = found
    return found


def current_session(**kwargs):
    """:func:`resolve_source` of ``kwargs``; with none, what ``install()`` installed if it
    was called (a chained role included), else ``irsa_session.session``: what unchanged
    code gets."""
    if any(value is not None for value in kwargs.values()):
        return resolve_source(**kwargs)
    return _registry.installed_session or default_session()


#: Called with the credentials that install_credentials() puts in place (or None):
#: ``irsa_session._aio`` registers its aiobotocore patch here when imported.
_installers = []


def on_install(function):
    """Have :func:`install_credentials` also call ``function(credentials)``."""
    if function not in _installers:
        _installers.append(function)


def install_credentials(session):
    """Put ``session``'s credentials where unchanged code finds them.

    botocore's default chain (a fallback session has none to put there: botocore's
    own chain comes back), aiobotocore's, and a new ``boto3.DEFAULT_SESSION`` in
    ``session``'s region, unless the current one was made by this function for
    these credentials, or the application set it up with a profile, a region or
    keys (then it stays as it is).
    """
    credentials, region_name = session._irsa_credentials, session.region_name
    with _registry.lock:
        _registry.installed_session = session
        _compat.put_first_in_default_chain(credentials)
        for function in _installers:
            function(credentials)
        current = boto3.DEFAULT_SESSION
        if current is not None and current is not _registry.boto3_default and (
            _compat.set_up_by_application(current)
        ):
            return  # the application's own choice
        if current is None or current is not _registry.boto3_default or _registry.installed is not credentials:
            # A default session boto3 made before this call may hold the chain's old answer.
            botocore_session = botocore.session.get_session()
            _compat.share_data(botocore_session)
            if credentials is None:
                _warn_if_none(botocore_session)
            boto3.DEFAULT_SESSION = boto3.session.Session(
                botocore_session=botocore_session, region_name=region_name
            )
            _registry.boto3_default = boto3.DEFAULT_SESSION
            _registry.installed = credentials


def _missing_message(absent):
    return (
        "IRSA is not configured: %s %s unset. In an EKS pod the pod identity "
        "webhook sets them when the pod's service account has the "
        "eks.amazonaws.com/role-arn annotation (restart the pod after adding it); "
        "elsewhere pass role_arn= and token_file="
        % (" and ".join(absent), "is" if len(absent) == 1 else "are")
    )


def _log_fallback(absent):
    if _registry.fallback_logged:
        return
    _registry.fallback_logged = True
    partial = len(absent) == 1  # one of the two set looks like a mistake
    logger.log(
        logging.WARNING if partial else logging.INFO,
        "%s; using boto3's default credential chain instead",
        _missing_message(absent),
    )
