"""The public factories, the session class, and the process-wide registry."""

import functools
import logging
import threading

import boto3
import boto3.session
import botocore.session

from . import _compat, _fork, _redact, config
from .credentials import Credentials
from .errors import ConfigError
from .sts import Exchange

__all__ = [
    "Session",
    "assumed_role_session",
    "refreshable_credentials",
    "install",
    "default_session",
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
        super(Session, self).__init__(
            botocore_session=botocore_session, region_name=region_name
        )
        self._irsa_settings = settings
        self._irsa_credentials = credentials
        self._irsa_lock = threading.RLock()
        self._irsa_clients = _compat.lru_cache(_CLIENTS_PER_SESSION)
        _fork.track(self)

    def __repr__(self):
        if self._irsa_settings is None:
            return "IrsaSession(fallback=True, region_name=%r)" % (self.region_name,)
        return "IrsaSession(role_arn=%r, session_name=%r, region_name=%r)" % (
            self._irsa_settings.role_arn,
            self._irsa_settings.session_name,
            self.region_name,
        )

    def __reduce__(self):
        return _restore, (self._irsa_settings,)

    def client(self, *args, **kwargs):
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

    def resource(self, *args, **kwargs):
        """Like ``boto3.Session.resource``; a new resource over the cached client."""
        with self._irsa_lock:
            return super(Session, self).resource(*args, **kwargs)

    def _after_fork(self):
        self._irsa_lock = threading.RLock()
        self._irsa_clients.clear()  # their connections belong to the parent


class _Registry(object):
    """One credentials object and one session per effective settings, per process."""

    def __init__(self):
        self.lock = threading.Lock()
        self.credentials = {}
        self.sessions = {}
        self.fallback_logged = False
        self.default = None
        self.boto3_default = None  # the boto3.DEFAULT_SESSION that install() made
        _fork.track(self)

    def clear(self):
        with self.lock:
            self.credentials.clear()
            self.sessions.clear()
            self.fallback_logged = False
            self.default = None
            self.boto3_default = None

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
            fetch = Exchange(settings)
            if settings.cache_dir is not None:
                from . import cache  # only those who opt in pay for its imports

                if cache.available():
                    fetch = cache.NodeCache(fetch, settings.cache_dir)
            # Valid credentials are still in hand in the advisory window: one
            # try there, and the cooldown spaces the next; no retry sleeps.
            found = Credentials(
                fetch, settings=settings, advisory_fetch=functools.partial(fetch, attempts=1)
            )
            _registry.credentials[settings] = found
        return found


def _session_for(settings):
    key = settings if settings.role_arn is not None else ("fallback", settings.region_name)
    found = _registry.sessions.get(key)
    if found is not None:
        return found
    credentials = _credentials_for(settings) if settings.role_arn is not None else None
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


def refreshable_credentials(
    role_arn=None,
    token_file=None,
    *,
    session_name=None,
    region_name=None,
    duration_seconds=None,
    sts_endpoint_url=None,
    policy=None,
    policy_arns=None
):
    """Return IRSA credentials as a botocore ``RefreshableCredentials``.

    For code that builds its own botocore session
    (``botocore_session._credentials = refreshable_credentials()``, or a
    credential provider).  Arguments and their environment variables are those
    of :func:`assumed_role_session`.  Nothing is read or fetched until the
    credentials are first used; the same settings give the same object.

    Raises:
        ConfigError: a setting is missing or invalid (there is no fallback).
    """
    settings = config.resolve(
        role_arn, token_file, session_name, region_name, duration_seconds,
        sts_endpoint_url, policy, policy_arns,
    )
    absent = config.missing(settings)
    if absent:
        raise ConfigError(_missing_message(absent), absent)
    return _credentials_for(settings)


def assumed_role_session(
    role_arn=None,
    token_file=None,
    *,
    session_name=None,
    region_name=None,
    duration_seconds=None,
    sts_endpoint_url=None,
    policy=None,
    policy_arns=None,
    fallback=True,
    cache_dir=None
):
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
    settings = config.resolve(
        role_arn, token_file, session_name, region_name, duration_seconds,
        sts_endpoint_url, policy, policy_arns, cache_dir=cache_dir,
    )
    absent = config.missing(settings)
    if absent:
        if not fallback:
            raise ConfigError(_missing_message(absent), absent)
        _log_fallback(absent)
        return _session_for(settings._replace(role_arn=None, token_file=None))
    return _session_for(settings)


def default_session():
    """The process-wide session behind ``irsa_session.session``."""
    found = _registry.default
    if found is None:
        found = assumed_role_session()
        _registry.default = found
    return found


def install(**kwargs):
    """Make IRSA credentials what unchanged boto3 and botocore code gets.

    Every ``boto3.Session()`` and ``botocore.session.get_session()`` created from
    now on, and boto3's default session (``boto3.client()``, ``boto3.resource()``),
    resolve the library's credentials where botocore puts web identity:
    environment keys and a chosen profile (``profile_name=`` or ``AWS_PROFILE``)
    still win, container and instance metadata come after.  All of them share
    one set of refreshing credentials (a new session makes no STS call), and
    ``boto3.client()`` still returns a new client per call.  Takes the arguments
    of :func:`assumed_role_session`; calling it again is harmless.  Returns the
    IRSA session (``session.client()`` is the cached one).
    """
    installed = assumed_role_session(**kwargs)
    with _registry.lock:
        _compat.put_first_in_default_chain(installed._irsa_credentials)
        if boto3.DEFAULT_SESSION is None or boto3.DEFAULT_SESSION is not _registry.boto3_default:
            # A default session made before this call may hold the chain's old answer.
            botocore_session = botocore.session.get_session()
            _compat.share_data(botocore_session)
            boto3.DEFAULT_SESSION = boto3.session.Session(botocore_session=botocore_session)
            _registry.boto3_default = boto3.DEFAULT_SESSION
    return installed


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
