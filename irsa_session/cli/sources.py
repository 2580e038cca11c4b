"""The doctor's checks of credential sources: which are set, which wins, EKS Pod Identity."""

import os
import time
import platform

import botocore
import botocore.configloader
import botocore.credentials
import botocore.exceptions
import botocore.session
import botocore.utils

from .. import _compat, _redact, config, token
from .._version import __version__
from ..config import (
    ACCESS_KEY_ID,
    CONFIG_FILE,
    CONTAINER_FULL_URI,
    CONTAINER_RELATIVE_URI,
    CONTAINER_TOKEN_FILE,
    METADATA_DISABLED,
    PROFILE,
    ROLE_ARN,
    SECRET_ACCESS_KEY,
    SESSION_TOKEN,
    TOKEN_FILE,
)
from ..errors import ConfigError, IrsaError, TokenFileError
from .render import FAIL, INFO, OK, SKIPPED, WARN, finding, until, utc
from .tokens import nearby

__all__ = [
    "credential_sources",
    "botocore_support",
    "versions",
    "pod_identity_set",
    "pod_identity",
    "pod_identity_token",
    "pod_identity_agent",
    "is_set",
]


def is_set(env, name):
    return bool(env.get(name, "").strip())


def pod_identity_set(env):
    return is_set(env, CONTAINER_FULL_URI) or is_set(env, CONTAINER_RELATIVE_URI)


def credential_sources(probe):
    """Which sources are present, and which wins, for irsa_session and for plain boto3."""
    env = probe.env
    status, fixes, lines, present = OK, [], [], []
    missing = [name for name, value in ((ROLE_ARN, probe.role_arn), (TOKEN_FILE, probe.path)) if not value]
    pod_identity = pod_identity_set(env)
    if not missing:
        present.append("irsa")
        lines.append(
            "IRSA: role ARN (from %s) and token file (from %s) are set" % (probe.role_from, probe.path_from)
        )
    elif pod_identity:
        lines.append("IRSA: %s unset" % " and ".join(missing))
    else:
        status = FAIL
        lines.append(
            "IRSA: %s %s unset%s"
            % (
                " and ".join(missing),
                "is" if len(missing) == 1 else "are",
                " (%s is set)" % (probe.role_from or probe.path_from) if len(missing) == 1 else "",
            )
        )
        fixes.append(
            "annotate the pod's service account with eks.amazonaws.com/role-arn (Kubeflow: "
            "the profile's AwsIamForServiceAccount plugin does it for default-editor) and "
            "restart the pod, so that the pod identity webhook sets %s and %s; elsewhere pass "
            "--role-arn and --token-file" % (ROLE_ARN, TOKEN_FILE)
        )
    if is_set(env, CONTAINER_FULL_URI) or is_set(env, CONTAINER_TOKEN_FILE):
        present.append("pod-identity")
        lines.append(
            "EKS Pod Identity: %s=%s, %s %s"
            % (
                CONTAINER_FULL_URI,
                config.shown_url(env.get(CONTAINER_FULL_URI, "(unset)")),
                CONTAINER_TOKEN_FILE,
                "is set" if is_set(env, CONTAINER_TOKEN_FILE) else "is unset",
            )
        )
    if is_set(env, ACCESS_KEY_ID) and is_set(env, SECRET_ACCESS_KEY):
        present.append("static-keys")
        lines.append(
            "static keys: %s (%s) and %s%s are set; in botocore's own chain they win over "
            "IRSA, but irsa_session's session ignores them"
            % (
                ACCESS_KEY_ID,
                env[ACCESS_KEY_ID].strip(),
                SECRET_ACCESS_KEY,
                " and %s" % SESSION_TOKEN if is_set(env, SESSION_TOKEN) else "",
            )
        )
        if status == OK:
            status = WARN
        fixes.append(
            "remove %s and %s from the pod (its env, or a Secret in envFrom) unless plain "
            "boto3 code in this process should use them rather than the role"
            % (ACCESS_KEY_ID, SECRET_ACCESS_KEY)
        )
    if is_set(env, PROFILE):
        present.append("profile")
        lines.append(
            "%s=%s: botocore's chain reads this profile of the shared config and credentials "
            "files; irsa_session's session ignores it" % (PROFILE, env[PROFILE].strip())
        )
    chain, winner, problem, note, installed_chain, installed_winner = _botocore_chain(
        env, irsa=not missing, pod_identity=bool(missing) and pod_identity
    )
    if note:
        lines.append(note)
    if problem:
        status = FAIL
        lines.append(problem)
        fixes.append(
            "set %s to a profile of the config file ($%s, default ~/.aws/config), or unset it"
            % (PROFILE, CONFIG_FILE)
        )
    lines.append(_node_role(env))
    if not missing:
        lines.append(
            "irsa_session uses IRSA: it reads %s and %s itself and ignores the other sources%s"
            % (ROLE_ARN, TOKEN_FILE, " (IRSA wins over EKS Pod Identity)" if pod_identity else "")
        )
    elif pod_identity:
        lines.append(
            "irsa_session uses EKS Pod Identity: it fetches from the agent itself, on every "
            "botocore (IRSA is not configured)"
        )
    else:
        lines.append("irsa_session falls back to boto3's default chain: IRSA is not configured")
    lines.append("plain boto3 (botocore's chain: %s) uses %s" % (", ".join(chain), winner))
    if not missing or pod_identity:
        lines.append(
            "after irsa_session.install(), plain boto3 (chain: %s) uses %s"
            % (", ".join(installed_chain), installed_winner)
        )
    return finding(
        "credential-sources", status, "\n".join(lines), "\n".join(fixes) or None,
        present=present,
        missing=missing,
        irsa_session_uses="irsa" if not missing else "pod-identity" if pod_identity else "default-chain",
        botocore_chain=chain,
        botocore_chain_uses=winner,
        installed_chain=installed_chain if not missing or pod_identity else None,
        installed_chain_uses=installed_winner if not missing or pod_identity else None,
    )


def _node_role(env):
    line = (
        "node role: instance metadata (169.254.169.254), the last resort of botocore's "
        "chain; not probed"
    )
    if env.get(METADATA_DISABLED, "").strip().lower() == "true":
        if hasattr(botocore.utils, "IMDSFetcher"):
            line += "; disabled by %s=true" % METADATA_DISABLED
        else:
            line += "; %s=true is set, but this botocore ignores it" % METADATA_DISABLED
    return line


class _Marker(object):
    """Stands for the library's provider when placing it in a copy of the chain."""

    METHOD = _compat.Provider.METHOD


def _botocore_chain(env, irsa=False, pod_identity=False):
    """(botocore's provider names in order, what wins, a problem, a note, and the
    chain and winner after ``install()``).

    Builds botocore's own resolver without asking any provider for credentials and
    reads only the local config files.  The installed chain places the library's
    provider exactly as ``install()`` does.
    """
    problem = note = None
    chain = ["env", "assume-role", "shared-credentials-file", "config-file", "container-role"]
    chain.append("iam-role")
    installed = list(chain)
    profile, keys = {}, {}
    try:
        session = botocore.session.Session()
        resolver = botocore.credentials.create_credential_resolver(session)
        chain = [getattr(each, "METHOD", type(each).__name__) for each in resolver.providers]
        providers = list(resolver.providers)
        _compat.place_provider(providers, _Marker(), session)
        installed = [getattr(each, "METHOD", type(each).__name__) for each in providers]
        profile = session.get_scoped_config()
        path = os.path.expanduser(session.get_config_variable("credentials_file") or "")
        if os.path.isfile(path):
            name = session.get_config_variable("profile") or "default"
            keys = botocore.configloader.raw_config_parse(path).get(name, {})
    except botocore.exceptions.ProfileNotFound as err:
        problem = (
            "%s: every botocore session in this process, irsa_session's too, raises "
            "ProfileNotFound when it makes a client" % err
        )
        return chain, "nothing: ProfileNotFound", problem, None, chain, "nothing: ProfileNotFound"
    except Exception as err:  # a malformed config file; botocore will complain too
        note = "botocore could not read its configuration: %s" % _redact.scrub(str(err))
    container = env.get(CONTAINER_FULL_URI, "").strip() or env.get(CONTAINER_RELATIVE_URI, "").strip()
    container_provider = getattr(botocore.credentials, "ContainerProvider", None)
    if is_set(env, CONTAINER_TOKEN_FILE) and not hasattr(
        container_provider, "ENV_VAR_AUTH_TOKEN_FILE"
    ):
        container = None
        note = "this botocore predates EKS Pod Identity (%s)" % CONTAINER_TOKEN_FILE
    web_identity = (env.get(ROLE_ARN, "").strip() or profile.get("role_arn")) and (
        env.get(TOKEN_FILE, "").strip() or profile.get("web_identity_token_file")
    )
    assume_role = profile.get("role_arn") and (
        profile.get("source_profile") or profile.get("credential_source")
    )
    found = {
        "env": is_set(env, ACCESS_KEY_ID) and is_set(env, SECRET_ACCESS_KEY)
        and "the static keys in %s (%s)" % (ACCESS_KEY_ID, env[ACCESS_KEY_ID].strip()),
        "assume-role": assume_role and "the profile's role_arn (assume-role)",
        "assume-role-with-web-identity": web_identity
        and "IRSA, through botocore's own web-identity provider",
        "sso": (profile.get("sso_start_url") or profile.get("sso_session"))
        and "the profile's SSO session",
        "shared-credentials-file": keys.get("aws_access_key_id")
        and "the profile's keys in the shared credentials file",
        "custom-process": profile.get("credential_process")
        and "the profile's credential_process (%s)" % profile.get("credential_process"),
        "config-file": profile.get("aws_access_key_id") and "the profile's keys in the config file",
        "container-role": container and "the container credentials endpoint (%s)" % config.shown_url(container),
    }
    disabled = env.get(METADATA_DISABLED, "").strip().lower() == "true"
    if disabled and hasattr(botocore.utils, "IMDSFetcher"):
        last = "nothing (instance metadata is disabled): NoCredentialsError"
    else:
        last = "the node's role through instance metadata if reachable (not probed), else nothing"
    winner = next((found[method] for method in chain if found.get(method)), last)
    if pod_identity:
        found[_Marker.METHOD] = "EKS Pod Identity, through irsa_session's provider"
    if irsa:
        found[_Marker.METHOD] = "IRSA, through irsa_session's provider"
        if is_set(env, PROFILE):  # botocore's web identity then reads only the profile
            found["assume-role-with-web-identity"] = (
                profile.get("web_identity_token_file") and profile.get("role_arn")
                and "the profile's web_identity_token_file, through botocore's provider"
            )
    installed_winner = next((found[method] for method in installed if found.get(method)), last)
    return chain, winner, problem, note, installed, installed_winner


def versions():
    import boto3

    return {
        "irsa_session": __version__,
        "boto3": boto3.__version__,
        "botocore": botocore.__version__,
        "python": platform.python_version(),
    }


def botocore_support(probe):
    """Whether plain boto3 gets IRSA credentials from this botocore; the versions."""
    has = hasattr(botocore.credentials, "AssumeRoleWithWebIdentityProvider")
    if has:
        detail = (
            "botocore %s has its own web-identity provider: plain boto3 gets IRSA credentials "
            "too, unless an earlier source in its chain wins" % botocore.__version__
        )
    else:
        detail = (
            "botocore %s has no web-identity provider: plain boto3.client(...) gets no IRSA "
            "credentials; irsa_session.session does (and irsa_session.install() for unchanged "
            "code)" % botocore.__version__
        )
    return finding("botocore", INFO, detail, web_identity_provider=has, versions=versions())


# EKS Pod Identity end to end: its settings, its token, one fetch from the agent.


def pod_identity(probe):
    from ..pod_identity import Agent

    try:
        settings = config.resolve_pod_identity(region_name=probe.region_name, environ=probe.env)
    except ConfigError as err:
        fix = "point %s at the Pod Identity agent (http://169.254.170.23/v1/credentials)" % CONTAINER_FULL_URI
        return finding("pod-identity", FAIL, str(err), fix)
    probe.agent, probe.agent_settings = Agent(settings), settings
    return finding(
        "pod-identity", OK,
        "the agent at %s; token from %s" % (
            config.shown_url(settings.full_uri),
            settings.token_file or (config.CONTAINER_TOKEN if settings.literal_token else "nowhere"),
        ),
        url=config.shown_url(settings.full_uri),
    )


def pod_identity_token(probe):
    """None where the agent is not set up or takes no token file."""
    if probe.agent is None or probe.agent_settings.token_file is None:
        return None
    path = probe.agent_settings.token_file
    try:
        web_token = probe.agent.proof()
    except TokenFileError as err:
        probe.agent_refused = "skipped: no token to send"
        near = nearby(err.path)
        fix = (
            "set %s to %s" % (CONTAINER_TOKEN_FILE, " or ".join(near)) if near
            else "check the pod's Pod Identity association, and restart the pod"
        )
        return finding("pod-identity-token", FAIL, str(err), fix, path=path)
    claims = token.claims(web_token) or {}
    return finding(
        "pod-identity-token", OK,
        "%s: %d bytes, sub %s, expires %s" % (
            path, len(web_token), claims.get("sub", "<none>"),
            utc(claims["exp"]) if isinstance(claims.get("exp"), (int, float)) else "<no exp>",
        ),
        path=path,
    )


def pod_identity_agent(probe):
    """One fetch from the agent; None where the agent is not set up."""
    agent = probe.agent
    if agent is None:
        return None
    if probe.agent_refused:
        return finding("pod-identity-agent", SKIPPED, probe.agent_refused)
    try:
        issued = agent()
    except Exception as err:  # the library's RefreshError
        detail = str(err) if isinstance(err, IrsaError) else "%s: %s" % (type(err).__name__, err)
        return finding(
            "pod-identity-agent", FAIL, _redact.scrub(detail), None,
            attempts=getattr(err, "attempts", None),
        )
    probe.issued, probe.answered, probe.exchange = issued, time.time(), agent
    return finding(
        "pod-identity-agent", OK,
        "the agent issued credentials: access key id %s, account %s, expiring %s (%s); %d call%s"
        % (issued.access_key, issued.account_id, utc(issued.expiry), until(issued.expiry),
           agent.calls, "s"[: agent.calls - 1]),
        access_key_id=issued.access_key, expiration=utc(issued.expiry), calls=agent.calls,
    )
