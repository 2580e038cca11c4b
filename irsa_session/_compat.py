"""The one module that touches botocore internals or differs between its versions.

Features are detected with ``hasattr`` and friends, never by version number, so
botocore 1.8.50 (Ray's old images) and today's release take the same paths
wherever they can.
"""

import datetime
import socket
import threading
from collections import OrderedDict

import botocore
import botocore.credentials
import botocore.exceptions
import botocore.session
from botocore.config import Config
from botocore.credentials import ReadOnlyCredentials, RefreshableCredentials

from . import _expired, _fork

__all__ = [
    "ReadOnlyCredentials",
    "RefreshableCredentials",
    "Frozen",
    "freeze",
    "Refreshable",
    "ADAPTED_NAMES",
    "transient_errors",
    "lru_cache",
    "share_data",
    "offer_for_sts",
    "settle",
    "sts_client",
    "set_up_by_application",
    "sts_config",
    "use_credentials",
    "put_first_in_default_chain",
    "place_provider",
    "client_key",
    "Provider",
]

#: Newer botocore carries the account id in frozen credentials.
HAS_ACCOUNT_ID = "account_id" in ReadOnlyCredentials._fields


class Frozen(ReadOnlyCredentials):
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


def freeze(issued):
    """The :class:`Frozen` snapshot of an :class:`~irsa_session.sts.Issued`."""
    frozen = Frozen(issued.access_key, issued.secret_key, issued.token)
    if HAS_ACCOUNT_ID:
        frozen = frozen._replace(account_id=issued.account_id)
    return frozen


#: The names of botocore's RefreshableCredentials that :class:`Refreshable` takes
#: over: botocore's own code and its users reach credentials through these.
#: tests/test_compat.py pins them on every botocore in the matrix.
ADAPTED_NAMES = (
    "access_key", "secret_key", "token", "method", "get_frozen_credentials",
    "refresh_needed", "_refresh", "_is_expired", "_expiry_time", "_refresh_using",
    "_refresh_lock",
)


class Refreshable(RefreshableCredentials):
    """botocore's RefreshableCredentials, served by an ``irsa_session._refresh.Refresher``.

    None of botocore's own state or refresh logic is used: every name in
    :data:`ADAPTED_NAMES` is answered from the refresher, so botocore 1.8 and
    today's release behave alike.
    """

    def __init__(self, refresher, method):  # botocore's __init__ is not called
        self._refresher = refresher
        self.method = method

    access_key = property(lambda self: self._refresher.get().access_key)
    secret_key = property(lambda self: self._refresher.get().secret_key)
    token = property(lambda self: self._refresher.get().token)

    @property
    def account_id(self):
        self._refresher.get()
        return self._refresher.account_id

    @property
    def _refresh_lock(self):
        return self._refresher.lock

    @property
    def _refresh_using(self):
        return self._refresher.fetch

    @property
    def _expiry_time(self):
        """botocore's name for the expiry; code that sets it moves the windows too."""
        if self._refresher.current is None:
            return None
        return datetime.datetime.fromtimestamp(self._refresher.expiry, _UTC)

    @_expiry_time.setter
    def _expiry_time(self, when):
        if when.tzinfo is None:
            when = when.replace(tzinfo=_UTC)
        self._refresher.set_expiry(when.timestamp())

    def get_frozen_credentials(self):
        return self._refresher.get()

    def refresh_needed(self, refresh_in=None):
        return self._refresher.due(refresh_in)

    def _is_expired(self):
        return self._refresher.expired()

    def _refresh(self):
        self._refresher.refresh()


_UTC = datetime.timezone.utc


def _errors(*names):
    """The named exception classes that this botocore has (module, name) pairs."""
    found = []
    for module, name in names:
        cls = getattr(module, name, None)
        if isinstance(cls, type) and issubclass(cls, BaseException):
            found.append(cls)
    return found


_transient = []


def transient_errors():
    """Errors worth retrying: the connection failed, timed out, or the answer was garbled.

    Built on first need: finding the classes imports modules that a process
    whose exchanges all succeed never has to load.
    """
    if not _transient:
        import botocore.parsers

        found = _errors(
            (botocore.exceptions, "EndpointConnectionError"),
            (botocore.exceptions, "ConnectionClosedError"),
            (botocore.exceptions, "HTTPClientError"),
            (botocore.exceptions, "ConnectionError"),
            (botocore.exceptions, "ReadTimeoutError"),
            (botocore.exceptions, "ConnectTimeoutError"),
            (botocore.exceptions, "IncompleteReadError"),
            (botocore.exceptions, "ResponseParserError"),
            (botocore.parsers, "ResponseParserError"),
        )
        try:  # botocore < 1.11 sends through its vendored requests
            from botocore.vendored.requests import exceptions
        except ImportError:
            pass
        else:
            found += _errors((exceptions, "RequestException"))
        _transient.append(tuple(found + [ConnectionError, socket.timeout, TimeoutError]))
    return _transient[0]


class _LRU(object):
    """The least-recently-used cache this package needs, when cachetools is absent."""

    def __init__(self, maxsize):
        self.maxsize = maxsize
        self._items = OrderedDict()

    def get(self, key, default=None):
        try:
            value = self._items.pop(key)
        except KeyError:
            return default
        self._items[key] = value
        return value

    def __setitem__(self, key, value):
        self._items.pop(key, None)
        self._items[key] = value
        while len(self._items) > self.maxsize:
            self._items.popitem(last=False)

    def __len__(self):
        return len(self._items)

    def clear(self):
        self._items.clear()


_lru_class = []


def lru_cache(maxsize):
    """A new LRU mapping: cachetools' where installed, else this module's own."""
    if not _lru_class:
        try:
            from cachetools import LRUCache
        except ImportError:
            LRUCache = _LRU
        _lru_class.append(LRUCache)
    return _lru_class[0](maxsize)


class Provider(botocore.credentials.CredentialProvider):
    """A link in botocore's credential chain that hands out one credentials object."""

    METHOD = "irsa-session"
    CANONICAL_NAME = "irsa-session"

    def __init__(self, credentials):
        super(Provider, self).__init__()
        self._credentials = credentials

    def load(self):
        return self._credentials


def _empty_resolver():
    return botocore.credentials.CredentialResolver(providers=[])


_loader = []
_sts_session = []


def share_data(botocore_session):
    """Give ``botocore_session`` the process's one data loader.

    Each botocore session reads service models and endpoint data (megabytes of
    JSON) through a loader of its own; sharing one means the STS exchange's
    session and every session this package builds read them once.
    """
    if _loader:
        botocore_session.register_component("data_loader", _loader[0])
    else:
        _loader.append(botocore_session.get_component("data_loader"))


def offer_for_sts(botocore_session):
    """Let exchanges build their STS clients on ``botocore_session``, if none has one yet.

    Only for sessions whose credential chain is this package's own provider:
    with an unsigned config, botocore 1.8 still asks the session for credentials
    when it builds a client, and that provider answers without any I/O.
    """
    if not _sts_session:
        settle(botocore_session)
        _sts_session.append(botocore_session)


def settle(botocore_session):
    """Build every component ``botocore_session`` would build lazily, now.

    botocore's component locator builds a lazy component, then deletes its
    factory: two threads doing that at once make the second raise KeyError.  A
    session shared between threads is settled before it is shared.
    """
    for name in ("_components", "_internal_components"):
        locator = getattr(botocore_session, name, None)
        deferred = getattr(locator, "_deferred", None)
        if isinstance(deferred, dict):
            for component in list(deferred):
                locator.get_component(component)


def sts_client(endpoint_url, region_name, connect_timeout, read_timeout):
    """An STS client that sends unsigned requests and never looks for credentials.

    AssumeRoleWithWebIdentity needs no credentials; an empty resolver keeps
    botocore from walking its chain (and probing instance metadata, which a pod
    may not reach) when the client is built.  botocore's own retries are off:
    the caller retries, re-reading the token each time.
    """
    if not _sts_session:  # one for all exchanges: building a session costs ~5 ms
        session = botocore.session.Session()
        share_data(session)
        session.register_component("credential_provider", _empty_resolver())
        settle(session)
        _sts_session.append(session)  # (two threads may both build one: harmless)
    session = _sts_session[0]
    config = sts_config(
        endpoint_url,
        signature_version=botocore.UNSIGNED,
        retries={"max_attempts": 0},
        connect_timeout=connect_timeout,
        read_timeout=read_timeout,
    )
    return session.create_client(
        "sts", region_name=region_name, endpoint_url=endpoint_url, config=config
    )


def sts_config(endpoint_url, **options):
    """A client ``Config`` for an STS endpoint: plain ``http://`` goes to no proxy.

    Plain http is allowed only to this machine (config checks it), because the
    token then never leaves it; a proxy from ``HTTP_PROXY`` would receive the
    token, or a chain's session token, in clear.  An empty ``proxies`` keeps
    botocore (1.8.50 included) from looking the environment up.
    """
    if (endpoint_url or "").lower().startswith("http://"):
        options["proxies"] = {}
    return Config(**options)


def policy_arns_params(client, arns):
    """Keyword arguments carrying ``arns``, for botocore that models PolicyArns.

    Older botocore (1.8.x) predates the parameter; there the ARNs are added to
    the query-protocol form body just before it is sent.
    """
    model = client.meta.service_model.operation_model("AssumeRoleWithWebIdentity")
    if "PolicyArns" in model.input_shape.members:
        return {"PolicyArns": [{"arn": arn} for arn in arns]}
    fields = dict(
        ("PolicyArns.member.%d.arn" % number, arn) for number, arn in enumerate(arns, 1)
    )

    def add_fields(params, **kwargs):
        params["body"].update(fields)

    client.meta.events.register_first(
        "before-call.sts.AssumeRoleWithWebIdentity", add_fields, unique_id="irsa-policy-arns"
    )
    return {}


def use_credentials(botocore_session, credentials):
    """Make ``credentials`` the only thing ``botocore_session`` resolves."""
    botocore_session.register_component(
        "credential_provider",
        botocore.credentials.CredentialResolver(providers=[Provider(credentials)]),
    )


_chain = {"credentials": None, "patched": False}
_chain_lock = threading.Lock()


def _new_locks():
    global _chain_lock
    _chain_lock = threading.Lock()  # a parent thread may have held it at the fork


_fork.after_fork(_new_locks)

# Providers that botocore consults after every profile-based one: with a profile
# chosen, the library's provider goes just before the first of these.
_AFTER_PROFILES = frozenset(["ec2-credentials-file", "boto-config", "container-role", "iam-role"])
# Providers that botocore consults before its web-identity one.
_BEFORE_WEB_IDENTITY = frozenset(["env", "assume-role"])
_WEB_IDENTITY = "assume-role-with-web-identity"


def place_provider(providers, provider, session):
    """Insert ``provider`` into ``providers`` (a resolver's list) where web identity goes.

    botocore's own order is environment keys, a profile's assume-role, then web
    identity, then the rest of the profile's sources, then container and instance
    metadata.  The library's provider takes web identity's place, so environment
    keys still win; when a profile is chosen (``profile_name=`` or ``AWS_PROFILE``)
    it goes after every source of that profile, so the profile still wins, and
    before container and instance metadata (botocore's web-identity provider then
    stops reading the IRSA variables, whose credentials the library's provider serves).  botocore 1.8 has no web-identity
    provider; the same rule puts it at the same place among the providers it has.
    """
    methods = [getattr(each, "METHOD", None) for each in providers]
    if _profile_chosen(session):
        later = [n for n, method in enumerate(methods) if method in _AFTER_PROFILES]
        for n, method in enumerate(methods):
            if method == _WEB_IDENTITY and n < (later or [len(providers)])[0]:
                if hasattr(providers[n], "_disable_env_vars"):
                    # Its environment settings are the library's, which answer here
                    # instead; a profile's own web_identity_token_file still works.
                    providers[n]._disable_env_vars = True
                else:
                    later = [n]
    else:
        later = [n for n, method in enumerate(methods) if method not in _BEFORE_WEB_IDENTITY]
    providers.insert(later[0] if later else len(providers), provider)


#: Set on a botocore session that must resolve botocore's own chain, whatever
#: install() put in it: the fallback session a chain may be signed with.
OWN_CHAIN = "_irsa_own_chain"


def put_first_in_default_chain(credentials):
    """Make botocore sessions built from now on resolve ``credentials`` in their chain.

    Every botocore session, legacy or new, builds its chain by calling
    ``botocore.credentials.create_credential_resolver`` when it first needs
    credentials; wrapping that one function reaches ``boto3.Session()`` and
    ``botocore.session.get_session()`` alike.  The provider goes where
    :func:`place_provider` says.  ``None`` restores botocore's own chain.
    """
    with _chain_lock:
        _chain["credentials"] = credentials
        if _chain["patched"]:
            return
        original = botocore.credentials.create_credential_resolver

        def create_credential_resolver(session, *args, **kwargs):
            resolver = original(session, *args, **kwargs)
            installed = _chain["credentials"]
            if installed is not None and not getattr(session, OWN_CHAIN, False):
                place_provider(resolver.providers, Provider(installed), session)
                _expired.watch(session, installed)  # clients made next copy its handlers
            return resolver

        create_credential_resolver.__wrapped__ = original
        botocore.credentials.create_credential_resolver = create_credential_resolver
        _chain["patched"] = True


def _profile_chosen(session):
    """Whether ``session`` names a profile: ``profile_name=`` or ``AWS_PROFILE``."""
    try:
        return session.get_config_variable("profile", methods=("instance", "env")) is not None
    except Exception:  # an unusual session object: treat as no profile chosen
        return False


def set_up_by_application(boto3_session):
    """Whether a ``boto3.Session`` was given a profile, a region or keys when it was made.

    ``boto3.setup_default_session(profile_name=...)`` (or ``region_name=``, or
    keys) is the application's choice; the default session that ``boto3.client()``
    makes on its own is not.
    """
    botocore_session = getattr(boto3_session, "_session", None)
    if botocore_session is None:
        return False
    try:
        chosen = botocore_session.get_config_variable("profile", methods=("instance",)) or (
            botocore_session.get_config_variable("region", methods=("instance",))
        )
    except Exception:  # an unusual session object: it was not made by boto3.client()
        return True
    keys = getattr(botocore_session, "_credentials", None)
    return bool(chosen) or (keys is not None and getattr(keys, "method", None) in (None, "explicit"))


def client_key(args, kwargs):
    """A hashable key for ``Session.client`` arguments, or None if there is none.

    A ``Config`` is keyed by the options it was given, so clients built with equal
    configs are shared even when each call makes a new ``Config`` object.
    """
    try:
        items = tuple(sorted((name, _freeze(value)) for name, value in kwargs.items()))
        key = (tuple(_freeze(value) for value in args), items)
        hash(key)
    except TypeError:
        return None
    return key


def _freeze(value):
    if isinstance(value, Config):
        options = getattr(value, "_user_provided_options", None)
        if options is None:
            return value
        return (Config, _freeze(options))
    if isinstance(value, dict):
        return (dict, tuple(sorted((key, _freeze(item)) for key, item in value.items())))
    if isinstance(value, (list, tuple)):
        return (type(value), tuple(_freeze(item) for item in value))
    return value
