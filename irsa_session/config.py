"""Settings from arguments, then the environment, checked once."""

import json
import os
import re
import socket
import time
from collections import namedtuple
from urllib.parse import urlsplit

from .errors import ConfigError

__all__ = [
    "ROLE_ARN",
    "TOKEN_FILE",
    "SESSION_NAME",
    "REGION",
    "DEFAULT_REGION",
    "ENDPOINT_URL_STS",
    "ENDPOINT_URL",
    "STS_REGIONAL_ENDPOINTS",
    "IGNORE_CONFIGURED_ENDPOINT_URLS",
    "CONTAINER_FULL_URI",
    "CONTAINER_RELATIVE_URI",
    "CONTAINER_TOKEN_FILE",
    "CONTAINER_TOKEN",
    "PodIdentitySettings",
    "resolve_pod_identity",
    "CACHE_DIR",
    "ACCESS_KEY_ID",
    "SECRET_ACCESS_KEY",
    "SESSION_TOKEN",
    "PROFILE",
    "CONFIG_FILE",
    "METADATA_DISABLED",
    "DEFAULT_TOKEN_PATH",
    "VARIABLES",
    "Settings",
    "resolve",
    "pick",
    "check",
    "endpoints_ignored",
    "missing",
    "sanitize_session_name",
    "shown_url",
    "sts_endpoint",
    "endpoint_problem",
]

#: The IAM role to assume; the pod identity webhook sets it from the
#: service account's ``eks.amazonaws.com/role-arn`` annotation.
ROLE_ARN = "AWS_ROLE_ARN"
#: Path of the projected service-account token (a JWT) the kubelet rewrites.
TOKEN_FILE = "AWS_WEB_IDENTITY_TOKEN_FILE"
#: Session name shown in CloudTrail.
SESSION_NAME = "AWS_ROLE_SESSION_NAME"
#: Region; honoured before ``AWS_DEFAULT_REGION`` (botocore reads only the latter).
REGION = "AWS_REGION"
DEFAULT_REGION = "AWS_DEFAULT_REGION"
#: STS endpoint override, then the all-services override.
ENDPOINT_URL_STS = "AWS_ENDPOINT_URL_STS"
ENDPOINT_URL = "AWS_ENDPOINT_URL"
#: ``regional`` (the default here) or ``legacy`` (the global endpoint).
STS_REGIONAL_ENDPOINTS = "AWS_STS_REGIONAL_ENDPOINTS"
#: EKS Pod Identity (and ECS): the agent's URL, or a path on 169.254.170.2...
CONTAINER_FULL_URI = "AWS_CONTAINER_CREDENTIALS_FULL_URI"
CONTAINER_RELATIVE_URI = "AWS_CONTAINER_CREDENTIALS_RELATIVE_URI"
#: ...and what goes in its Authorization header: a token file the kubelet
#: rotates (read at every fetch), else a literal token.
CONTAINER_TOKEN_FILE = "AWS_CONTAINER_AUTHORIZATION_TOKEN_FILE"
CONTAINER_TOKEN = "AWS_CONTAINER_AUTHORIZATION_TOKEN"
#: ``true`` makes the endpoint variables above ignored, as in botocore.
IGNORE_CONFIGURED_ENDPOINT_URLS = "AWS_IGNORE_CONFIGURED_ENDPOINT_URLS"
#: Directory of the opt-in node-wide credential cache (irsa_session's own).
CACHE_DIR = "IRSA_SESSION_CACHE_DIR"
#: Other credential sources and settings, as botocore names them (the doctor reports them).
ACCESS_KEY_ID = "AWS_ACCESS_KEY_ID"
SECRET_ACCESS_KEY = "AWS_SECRET_ACCESS_KEY"
SESSION_TOKEN = "AWS_SESSION_TOKEN"
PROFILE = "AWS_PROFILE"
CONFIG_FILE = "AWS_CONFIG_FILE"
METADATA_DISABLED = "AWS_EC2_METADATA_DISABLED"

#: Where the pod identity webhook mounts the token.
DEFAULT_TOKEN_PATH = "/var/run/secrets/eks.amazonaws.com/serviceaccount/token"

#: The variables each setting of :func:`resolve` is read from, in order, when no
#: argument gives it.
VARIABLES = {
    "role_arn": (ROLE_ARN,),
    "token_file": (TOKEN_FILE,),
    "session_name": (SESSION_NAME,),
    "region_name": (REGION, DEFAULT_REGION),
    "sts_endpoint_url": (ENDPOINT_URL_STS, ENDPOINT_URL),
    "cache_dir": (CACHE_DIR,),
}

Settings = namedtuple(
    "Settings",
    "role_arn token_file session_name region_name duration_seconds "
    "sts_endpoint_url policy policy_arns cache_dir",
    defaults=(None,),
)
Settings.__doc__ = "The effective settings of one set of credentials; secret-free."

# Patterns as text, compiled (and cached by ``re``) on first use, not at import.
_ROLE_ARN = r"^arn:aws[a-z-]*:iam::\d{12}:role/(?:[\x21-\x7e]+/)?[\w+=,.@-]{1,64}$"
_POLICY_ARN = r"^arn:aws[a-z-]*:iam::(?:\d{12}|aws):policy/\S+$"
_REGION = r"^[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?$"
_NOT_NAME_CHARS = r"[^\w+=,.@-]"


def is_role_arn(text):
    """Whether ``text`` has the shape of an IAM role ARN."""
    return re.match(_ROLE_ARN, text, re.ASCII) is not None


_DURATION = (900, 43200)

# Region prefix -> DNS suffix, most specific prefix first (botocore's partitions).
_DNS_SUFFIXES = (
    ("cn-", "amazonaws.com.cn"),
    ("us-isob-", "sc2s.sgov.gov"),
    ("us-isof-", "csp.hci.ic.gov"),
    ("us-iso-", "c2s.ic.gov"),
    ("eu-isoe-", "cloud.adc-e.uk"),
    ("eusc-", "amazonaws.eu"),
)
# With AWS_STS_REGIONAL_ENDPOINTS=legacy, botocore sends these to sts.amazonaws.com.
_LEGACY_GLOBAL_REGIONS = frozenset(
    "ap-northeast-1 ap-south-1 ap-southeast-1 ap-southeast-2 ca-central-1 "
    "eu-central-1 eu-north-1 eu-west-1 eu-west-2 eu-west-3 sa-east-1 "
    "us-east-1 us-east-2 us-west-1 us-west-2".split()
)
_GLOBAL_ENDPOINT = "https://sts.amazonaws.com"


#: The keyword arguments of :func:`resolve` that describe IRSA settings.
OPTIONS = (
    "role_arn", "token_file", "session_name", "region_name", "duration_seconds",
    "sts_endpoint_url", "policy", "policy_arns", "cache_dir",
)


def resolve(
    *,
    role_arn=None,
    token_file=None,
    session_name=None,
    region_name=None,
    duration_seconds=None,
    sts_endpoint_url=None,
    policy=None,
    policy_arns=None,
    environ=None,
    cache_dir=None,
):
    """Return the effective :class:`Settings`; raise ConfigError if one is invalid.

    A missing role ARN or token file is left as ``None`` (see :func:`missing`),
    since only the caller knows whether to fall back.
    """
    env = os.environ if environ is None else environ
    role_arn = pick("role_arn", role_arn, env)[0]
    token_file = pick("token_file", token_file, env)[0]
    region_name = pick("region_name", region_name, env)[0]
    _check_role_arn(role_arn)
    _check_token_file(token_file)
    _check_region(region_name)
    return Settings(
        role_arn=role_arn,
        token_file=token_file,
        session_name=sanitize_session_name(
            pick("session_name", session_name, env)[0] or _default_session_name()
        ),
        region_name=region_name,
        duration_seconds=_check_duration(duration_seconds),
        sts_endpoint_url=_endpoint(sts_endpoint_url, region_name, env),
        policy=_check_policy(policy),
        policy_arns=_check_policy_arns(policy_arns),
        cache_dir=_check_cache_dir(pick("cache_dir", cache_dir, env)[0]),
    )


def pick(name, value=None, environ=None, argument=None):
    """Setting ``name`` of :func:`resolve` as it is picked there, and where it came from.

    Returns ``(value, source)``: ``value`` if given and not blank, else the first
    non-blank variable of ``VARIABLES[name]`` (no endpoint variable when
    :func:`endpoints_ignored`), stripped; ``source`` is ``argument`` (default
    ``name``), that variable's name, or None if neither is set, so that the
    default applies.  Only the type is checked here: see :func:`check`.
    """
    env = os.environ if environ is None else environ
    names = VARIABLES[name]
    if name == "sts_endpoint_url" and endpoints_ignored(env):
        names = ()
    return _pick(value, argument or name, env, *names)


def check(name, value):
    """Return ``value`` of setting ``name`` if :func:`resolve` would accept it, else
    raise ConfigError saying why; None (unset) passes.

    ``name`` is one of ``role_arn``, ``token_file``, ``region_name``,
    ``duration_seconds``, ``policy``, ``policy_arns`` and ``cache_dir``.
    """
    return _CHECKS[name](value)


def endpoints_ignored(environ=None):
    """Whether ``AWS_IGNORE_CONFIGURED_ENDPOINT_URLS=true``, as in botocore."""
    env = os.environ if environ is None else environ
    return env.get(IGNORE_CONFIGURED_ENDPOINT_URLS, "").strip().lower() == "true"


PodIdentitySettings = namedtuple(
    "PodIdentitySettings", "source full_uri token_file literal_token region_name cache_dir"
)
PodIdentitySettings.__doc__ = (
    "The effective settings of EKS Pod Identity credentials; secret-free "
    "(``literal_token`` only says that %s is to be read at each fetch)." % CONTAINER_TOKEN
)
_POD_IDENTITY = "pod-identity"
# Hosts the token may go to over plain http, as in botocore: ECS's and the EKS Pod
# Identity agent's link-local addresses; loopback is allowed too.
_CONTAINER_HOSTS = frozenset(["169.254.170.2", "169.254.170.23", "fd00:ec2::23"])
_RELATIVE_HOST = "http://169.254.170.2"


def resolve_pod_identity(full_uri=None, token_file=None, region_name=None, cache_dir=None, environ=None):
    """The effective :class:`PodIdentitySettings`, or None if no agent URL is set.

    The URL comes from ``full_uri``, else ``AWS_CONTAINER_CREDENTIALS_FULL_URI``,
    else ``AWS_CONTAINER_CREDENTIALS_RELATIVE_URI`` on 169.254.170.2; raise
    ConfigError naming the setting if the token must not go there.
    """
    env = os.environ if environ is None else environ
    url, source = _pick(full_uri, "full_uri", env, CONTAINER_FULL_URI)
    if url is None:
        relative = _pick(None, None, env, CONTAINER_RELATIVE_URI)[0]
        if relative is None:
            return None
        url, source = _RELATIVE_HOST + "/" + relative.lstrip("/"), CONTAINER_RELATIVE_URI
    problem = _url_problem(url, _CONTAINER_URL, _CONTAINER_HOSTS, _CONTAINER_PLAIN_HTTP)
    if problem:
        raise ConfigError(
            "EKS Pod Identity URL %r (here from %s; set by full_uri, %s or %s) %s"
            % (shown_url(url), source, CONTAINER_FULL_URI, CONTAINER_RELATIVE_URI, problem)
        )
    token_file = _pick(token_file, "token_file", env, CONTAINER_TOKEN_FILE)[0]
    if token_file is not None and not os.path.isabs(token_file):
        raise ConfigError(
            "Pod Identity token file %r (token_file or %s) must be an absolute path; EKS "
            "sets /var/run/secrets/pods.eks.amazonaws.com/serviceaccount/eks-pod-identity-token"
            % (token_file, CONTAINER_TOKEN_FILE)
        )
    literal = token_file is None and bool(env.get(CONTAINER_TOKEN, "").strip())
    if literal and any(char in env[CONTAINER_TOKEN].strip() for char in "\r\n"):
        raise ConfigError(
            "%s holds a line break: a header value cannot (its value is not shown)"
            % CONTAINER_TOKEN
        )
    region_name = _check_region(pick("region_name", region_name, env)[0])
    return PodIdentitySettings(
        source=_POD_IDENTITY,
        full_uri=url,
        token_file=token_file,
        literal_token=literal,
        region_name=region_name,
        cache_dir=_check_cache_dir(pick("cache_dir", cache_dir, env)[0]),
    )


def missing(settings):
    """Names of the variables a usable IRSA setup still lacks (empty if none)."""
    return tuple(
        name
        for name, value in ((ROLE_ARN, settings.role_arn), (TOKEN_FILE, settings.token_file))
        if value is None
    )


def sanitize_session_name(name):
    """Fit ``name`` to STS's rules: 2 to 64 characters of ``[\\w+=,.@-]``."""
    name = re.sub(_NOT_NAME_CHARS, "-", name.strip(), flags=re.ASCII)[:64]
    if len(name) < 2:
        name = ("irsa-" + name)[:64]
    return name


def sts_endpoint(region_name, environ=None):
    """The STS endpoint URL for ``region_name``: regional unless asked otherwise."""
    env = os.environ if environ is None else environ
    if region_name is None:
        return _GLOBAL_ENDPOINT
    legacy = env.get(STS_REGIONAL_ENDPOINTS, "").strip().lower() == "legacy"
    if legacy and region_name in _LEGACY_GLOBAL_REGIONS:
        return _GLOBAL_ENDPOINT
    suffix = "amazonaws.com"
    for prefix, dns_suffix in _DNS_SUFFIXES:
        if region_name.startswith(prefix):
            suffix = dns_suffix
            break
    return "https://sts.%s.%s" % (region_name, suffix)


def _pick(value, argument, env, *names):
    """(value, source): the argument if not blank, else the first non-blank variable,
    stripped; ``source`` is ``argument`` or that variable's name; (None, None) if unset."""
    if value is not None:
        if not isinstance(value, str):
            raise ConfigError(
                "%s must be a string, not %s" % (argument, type(value).__name__)
            )
        if value.strip():
            return value.strip(), argument
    for name in names:
        found = env.get(name, "").strip()
        if found:
            return found, name
    return None, None


_session_name_cache = []


def _default_session_name():
    """The pod's host name, else a timestamp; fixed for the life of the process."""
    if not _session_name_cache:
        try:
            host = socket.gethostname()
        except OSError:
            host = ""
        _session_name_cache.append(host or "irsa-session-%d" % time.time())
    return _session_name_cache[0]


def _check_role_arn(role_arn):
    if role_arn is not None and not is_role_arn(role_arn):
        raise ConfigError(
            "role ARN %r (role_arn or %s) is not an IAM role ARN: expected "
            "arn:<partition>:iam::<12-digit account>:role/<path/name>, as in the "
            "service account's eks.amazonaws.com/role-arn annotation"
            % (role_arn, ROLE_ARN)
        )
    return role_arn


def _check_token_file(token_file):
    if token_file is not None and not os.path.isabs(token_file):
        raise ConfigError(
            "token file %r (token_file or %s) must be an absolute path; the pod "
            "identity webhook sets %s" % (token_file, TOKEN_FILE, DEFAULT_TOKEN_PATH)
        )
    return token_file


def _check_region(region_name):
    if region_name is not None and not re.match(_REGION, region_name):
        raise ConfigError(
            "region %r (region_name, %s or %s) is not a region name such as "
            "'us-west-2'" % (region_name, REGION, DEFAULT_REGION)
        )
    return region_name


def _check_duration(value):
    if value is None:
        return None
    low, high = _DURATION
    if isinstance(value, bool) or not isinstance(value, int):
        problem = "is not a whole number of seconds (an int)"
    elif not low <= value <= high:
        problem = "is out of range"
    else:
        return value
    raise ConfigError(
        "duration_seconds=%r %s: STS accepts whole seconds from %d to %d (and no "
        "more than the role's maximum session duration)" % (value, problem, low, high)
    )


def _endpoint(explicit, region_name, env):
    url, source = pick("sts_endpoint_url", explicit, env)
    if url is None:
        return sts_endpoint(region_name, env)
    setting = "here from %s; set by sts_endpoint_url, %s or %s" % (
        source, ENDPOINT_URL_STS, ENDPOINT_URL,
    )
    problem = endpoint_problem(url)
    if problem:
        raise ConfigError("STS endpoint URL %r (%s) %s" % (shown_url(url), setting, problem))
    return url.rstrip("/")


def endpoint_problem(url):
    """Why the token must not be sent to ``url``, or None if it may.

    The web identity token is a bearer credential: it goes only over https, or
    over plain http to this machine (a local STS or proxy); never to a URL with
    user info, whose host is not what it seems (https://sts.amazonaws.com@evil).
    """
    return _url_problem(url, _STS_URL, frozenset(), _STS_PLAIN_HTTP)


_STS_URL = (r"^https?://[^/?#\s]+(/[^?#\s]*)?$", "http(s)://host[:port]")
_STS_PLAIN_HTTP = (
    "which would send the token unencrypted: use https, or plain http only to this "
    "machine (127.0.0.1, ::1, localhost)"
)
_CONTAINER_URL = (r"^https?://[^/?#\s]+(/[^#\s]*)?$", "http(s)://host[:port]/path")
_CONTAINER_PLAIN_HTTP = (
    "the token goes over plain http only to the EKS Pod Identity agent "
    "(169.254.170.23, fd00:ec2::23), ECS (169.254.170.2) or this machine; anything "
    "else must be https"
)


def _url_problem(url, shape, plain_http_hosts, plain_http_says):
    """What is wrong with a URL a token is sent to, or None.

    ``shape`` is (pattern, what it looks like); plain http is allowed only to
    ``plain_http_hosts`` and loopback.  User info is never allowed.
    """
    pattern, expected = shape
    if not re.match(pattern, url, re.IGNORECASE):
        return "is malformed: expected %s" % expected
    parts = urlsplit(url)
    if "@" in parts.netloc:
        return (
            "carries user info before '@', so the token would go to %r: give only %s"
            % (parts.hostname or "?", expected)
        )
    try:
        parts.port
    except ValueError:
        return "has an invalid port"
    host = (parts.hostname or "").lower()
    if parts.scheme.lower() == "http" and host not in plain_http_hosts and not _loopback(host):
        return "is plain http to %r, %s" % (host, plain_http_says)
    return None


def _loopback(host):
    import ipaddress  # on first need (botocore has usually loaded it already)

    if host.lower() == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def shown_url(url):
    """``url`` without any password in its user info, for messages."""
    netloc = urlsplit(url).netloc
    if "@" in netloc and ":" in netloc.rsplit("@", 1)[0]:
        return url.replace(netloc, "%s:****@%s" % (netloc.split(":", 1)[0], netloc.rsplit("@", 1)[1]), 1)
    return url


def _check_cache_dir(path):
    if path is None:
        return None
    path = os.path.expanduser(path)
    if not os.path.isabs(path):
        raise ConfigError(
            "cache directory %r (cache_dir or %s) must be an absolute path of a "
            "directory private to this pod, such as an emptyDir volume mounted at "
            "/var/run/irsa-session (never a hostPath shared by pods)" % (path, CACHE_DIR)
        )
    return path


def _check_policy(policy):
    if policy is None:
        return None
    if not isinstance(policy, str):
        raise ConfigError(
            "policy must be a JSON string (json.dumps your dict), not %s"
            % type(policy).__name__
        )
    try:
        json.loads(policy)
    except ValueError as err:
        raise ConfigError("policy is not valid JSON: %s" % err) from err
    return policy


def _check_policy_arns(arns):
    if arns is None:
        return None
    if isinstance(arns, str) or not isinstance(arns, (list, tuple)):
        raise ConfigError(
            "policy_arns must be a list of managed-policy ARN strings, not %s"
            % type(arns).__name__
        )
    for arn in arns:
        if not isinstance(arn, str) or not re.match(_POLICY_ARN, arn, re.ASCII):
            raise ConfigError(
                "policy_arns holds %r, which is not a managed-policy ARN such as "
                "arn:aws:iam::aws:policy/ReadOnlyAccess" % (arn,)
            )
    return tuple(arns)


_CHECKS = {
    "role_arn": _check_role_arn,
    "token_file": _check_token_file,
    "region_name": _check_region,
    "duration_seconds": _check_duration,
    "policy": _check_policy,
    "policy_arns": _check_policy_arns,
    "cache_dir": _check_cache_dir,
}
