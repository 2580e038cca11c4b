"""The command line: ``irsa-session doctor | credential-process | env | trust-policy``.

``doctor`` tells what is wrong with IRSA in this process and never prints a
secret; ``credential-process`` and ``env`` exist to print credentials;
``trust-policy`` prints the role trust policy that admits service accounts.
Standard library and boto3 only, in Python 3.7 syntax, so it runs in old images.
"""

import argparse
import datetime
import difflib
import email.utils
import json
import os
import platform
import re
import shlex
import sys
import time

try:
    import grp
    import pwd
except ImportError:  # not on Windows, where owners have no numbers anyway
    grp = pwd = None

import botocore
import botocore.configloader
import botocore.credentials
import botocore.exceptions
import botocore.session
import botocore.utils
from botocore.config import Config

from . import _compat, _redact, config, sts, token
from ._version import __version__
from .config import (
    DEFAULT_REGION,
    ENDPOINT_URL,
    ENDPOINT_URL_STS,
    IGNORE_CONFIGURED_ENDPOINT_URLS,
    REGION,
    ROLE_ARN,
    STS_REGIONAL_ENDPOINTS,
    TOKEN_FILE,
)
from .errors import ConfigError, IrsaError, TokenFileError

__all__ = ["main", "doctor", "trust_policy", "issuer_host"]

PROG = "irsa-session"
#: The audience of IRSA tokens, and of the trust policy's ``:aud`` condition.
STS_AUDIENCE = "sts.amazonaws.com"
#: Where the pod identity webhook mounts the token.
DEFAULT_TOKEN_PATH = "/var/run/secrets/eks.amazonaws.com/serviceaccount/token"

# Other credential sources, as botocore names them.
ACCESS_KEY_ID = "AWS_ACCESS_KEY_ID"
SECRET_ACCESS_KEY = "AWS_SECRET_ACCESS_KEY"
SESSION_TOKEN = "AWS_SESSION_TOKEN"
PROFILE = "AWS_PROFILE"
CONFIG_FILE = "AWS_CONFIG_FILE"
CONTAINER_URI = config.CONTAINER_FULL_URI
CONTAINER_RELATIVE_URI = config.CONTAINER_RELATIVE_URI
POD_IDENTITY_TOKEN_FILE = config.CONTAINER_TOKEN_FILE
METADATA_DISABLED = "AWS_EC2_METADATA_DISABLED"

SKEW_WARN = 60  # seconds
SKEW_FAIL = 300  # SigV4 refuses requests signed more than 5 minutes off

OK, WARN, FAIL, INFO, SKIPPED = "ok", "warn", "fail", "info", "skipped"

_SUBJECT = re.compile(r"^system:serviceaccount:([^:]+):([^:]+)$")
_ACCOUNT = re.compile(r"^\d{12}$")
_PARTITION = re.compile(r"^aws[a-z-]*$")
_K8S_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9.-]*$")
_TRUST_CODES = ("AccessDenied", "IDPRejectedClaim")
_EPOCH = datetime.datetime(1970, 1, 1, tzinfo=datetime.timezone.utc)


def main(argv=None):
    """Run the command line on ``argv`` (default ``sys.argv[1:]``); return the exit status.

    0: all is well; 1: a problem was found or an operation failed; 2: a usage error.
    """
    parser = _parser()
    try:
        args = parser.parse_args(argv)
        return args.run(args)
    except SystemExit as done:  # argparse: --help and --version (0), usage errors (2)
        code = done.code
        return code if isinstance(code, int) else (0 if code is None else 2)


# -- arguments ----------------------------------------------------------------------


def _parser():
    parser = argparse.ArgumentParser(
        prog=PROG,
        description="IRSA (IAM Roles for Service Accounts) credentials for EKS pods, on "
        "every boto3 from 1.4.8. 'irsa-session COMMAND --help' tells more.",
    )
    parser.add_argument("--version", action="version", version="%s %s" % (PROG, __version__))
    commands = parser.add_subparsers(dest="command", metavar="COMMAND")
    commands.required = True

    settings = argparse.ArgumentParser(add_help=False)
    group = settings.add_argument_group("settings (each wins over its environment variable)")
    group.add_argument("--role-arn", metavar="ARN", help="role to assume (default: $%s)" % ROLE_ARN)
    group.add_argument(
        "--token-file", metavar="PATH",
        help="the projected service-account token (default: $%s)" % TOKEN_FILE,
    )
    group.add_argument(
        "--region", metavar="REGION",
        help="picks the regional STS endpoint (default: $%s, then $%s)" % (REGION, DEFAULT_REGION),
    )
    group.add_argument(
        "--sts-endpoint-url", metavar="URL",
        help="STS endpoint (default: $%s, then $%s, else the regional one)"
        % (ENDPOINT_URL_STS, ENDPOINT_URL),
    )

    chaining = argparse.ArgumentParser(add_help=False)
    group = chaining.add_argument_group("role chaining")
    group.add_argument(
        "--assume-role", metavar="ARN",
        help="then assume this role (sts:AssumeRole, often in another account), signed with "
        "the pod's credentials: its credentials are the ones printed or checked",
    )
    group.add_argument(
        "--external-id", metavar="ID",
        help="the sts:ExternalId that the --assume-role role's trust policy requires",
    )

    command = commands.add_parser(
        "doctor", parents=[settings, chaining],
        help="tell what is wrong with IRSA in this process (prints no secret)",
        description="Check the credential sources, the token file and its claims, the role "
        "ARN and the STS endpoint; make one AssumeRoleWithWebIdentity call and one "
        "GetCallerIdentity call; say what to fix. Prints no secret. Exit status 1 when a "
        "check fails.",
    )
    command.add_argument("--json", action="store_true", help="print the findings as JSON")
    command.set_defaults(run=_run_doctor)

    command = commands.add_parser(
        "credential-process", parents=[settings, chaining],
        help="print credentials for an AWS profile's credential_process",
        description="Print credentials as the JSON that 'credential_process = irsa-session "
        "credential-process' in an AWS config profile expects, for the AWS CLI and any SDK. "
        "On error: the message on stderr, exit status 1, nothing on stdout.",
    )
    command.set_defaults(run=_run_credential_process)

    command = commands.add_parser(
        "env", parents=[settings, chaining],
        help="print credentials as environment variables (they do not refresh)",
        description="Print AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY and AWS_SESSION_TOKEN, "
        "e.g. for eval \"$(irsa-session env)\". They do not refresh: stderr says when they "
        "expire.",
    )
    command.add_argument(
        "--format", choices=("shell", "dotenv", "json"), default="shell",
        help="shell: export lines (default); dotenv: KEY=value lines; json: one object",
    )
    command.set_defaults(run=_run_env)

    command = commands.add_parser(
        "trust-policy",
        help="print the role trust policy that admits given service accounts",
        description="Print the IAM role trust policy (JSON) that lets the given service "
        "accounts assume the role through the cluster's OIDC provider: the policy that "
        "Kubeflow's profile controller maintains.",
    )
    issuer = command.add_mutually_exclusive_group(required=True)
    issuer.add_argument("--issuer", metavar="URL", help="the cluster's OIDC issuer URL")
    issuer.add_argument("--from-token", metavar="FILE", help="take the issuer from this token")
    command.add_argument(
        "--account", metavar="ID",
        help="12-digit account of the role (default: that of $%s)" % ROLE_ARN,
    )
    command.add_argument(
        "--partition", metavar="NAME",
        help="aws, aws-cn, aws-us-gov... (default: that of $%s, else aws)" % ROLE_ARN,
    )
    command.add_argument(
        "--namespace", metavar="NS", action="append", default=[],
        help="a service account's namespace; repeat, paired in order with --service-account",
    )
    command.add_argument(
        "--service-account", metavar="SA", action="append", default=[],
        help="a service account's name; repeat, paired in order with --namespace",
    )
    command.set_defaults(run=_run_trust_policy, usage=command)
    return parser


# -- credential-process and env -------------------------------------------------------


def _run_credential_process(args):
    try:
        frozen, expiry = _credentials(args)
    except Exception as err:  # the library's message (or botocore's), never a traceback
        return _failed("credential-process", err)
    document = {
        "Version": 1,
        "AccessKeyId": frozen.access_key,
        "SecretAccessKey": frozen.secret_key,
        "SessionToken": frozen.token,
        "Expiration": _utc(expiry),
    }
    sys.stdout.write(json.dumps(document) + "\n")
    return 0


def _run_env(args):
    try:
        frozen, expiry = _credentials(args)
    except Exception as err:
        return _failed("env", err)
    pairs = (
        (ACCESS_KEY_ID, frozen.access_key),
        (SECRET_ACCESS_KEY, frozen.secret_key),
        (SESSION_TOKEN, frozen.token),
    )
    if args.format == "json":
        text = json.dumps(dict(pairs), indent=2) + "\n"
    elif args.format == "dotenv":
        text = "".join("%s=%s\n" % (name, _dotenv_quote(value)) for name, value in pairs)
    else:
        text = "".join("export %s=%s\n" % (name, shlex.quote(value)) for name, value in pairs)
    sys.stdout.write(text)
    sys.stderr.write(
        "%s env: these credentials do not refresh: they expire at %s (%s). Run this again "
        "before then, or give programs a profile with 'credential_process = irsa-session "
        "credential-process', whose credentials refresh.\n" % (PROG, _utc(expiry), _until(expiry))
    )
    return 0


def _dotenv_quote(value):
    """``value`` double-quoted for a .env file, so no character of it can end the line."""
    escaped = value.replace("\\", "\\\\").replace('"', '\\"').replace("$", "\\$")
    return '"%s"' % escaped.replace("\n", "\\n").replace("\r", "\\r")


def _credentials(args):
    """(frozen credentials, expiry in seconds since the epoch), from the library's registry."""
    from .sessions import _credentials_for, refreshable_credentials

    if args.assume_role is not None:
        from .chain import assume_role

        credentials = assume_role(
            args.assume_role,
            source=_chain_source(args),
            external_id=args.external_id,
            region_name=args.region,
            sts_endpoint_url=args.sts_endpoint_url,
        ).get_credentials()
        frozen = credentials.get_frozen_credentials()
        return frozen, (credentials.expires_at - _EPOCH).total_seconds()
    if args.external_id is not None:
        raise ConfigError("--external-id goes with --assume-role")
    irsa = config.resolve(
        role_arn=args.role_arn, token_file=args.token_file, region_name=args.region,
        sts_endpoint_url=args.sts_endpoint_url,
    )
    pod_identity = config.resolve_pod_identity(region_name=args.region) if config.missing(irsa) else None
    if pod_identity is not None:  # IRSA wins when both are set, as for the session
        credentials = _credentials_for(pod_identity)
    else:
        credentials = refreshable_credentials(
            role_arn=args.role_arn,
            token_file=args.token_file,
            region_name=args.region,
            sts_endpoint_url=args.sts_endpoint_url,
        )
    frozen = credentials.get_frozen_credentials()
    return frozen, (credentials.expires_at - _EPOCH).total_seconds()


def _chain_source(args):
    """The session that signs --assume-role: IRSA, else EKS Pod Identity, as for the session."""
    from .sessions import _auto_session

    source = _auto_session(
        role_arn=args.role_arn,
        token_file=args.token_file,
        region_name=args.region,
        sts_endpoint_url=args.sts_endpoint_url,
    )
    if source._irsa_settings is None:
        raise ConfigError(
            "--assume-role needs credentials to sign with: neither IRSA (%s and %s) nor EKS "
            "Pod Identity (%s) is configured" % (ROLE_ARN, TOKEN_FILE, CONTAINER_URI)
        )
    return source


def _failed(command, err):
    sys.stderr.write("%s %s: error: %s\n" % (PROG, command, _redact.scrub(str(err))))
    return 1


# -- trust-policy -----------------------------------------------------------------------


def issuer_host(issuer):
    """The issuer without ``https://`` and trailing slashes: the IAM OIDC provider's name."""
    issuer = issuer.strip()
    if issuer.lower().startswith("https://"):
        issuer = issuer[len("https://"):]
    return issuer.rstrip("/")


def trust_policy(issuer, account, subjects, partition="aws", audience=STS_AUDIENCE):
    """The role trust policy (a dict) admitting ``issuer``'s tokens whose sub is in ``subjects``.

    ``subjects`` are whole ``sub`` claims: ``system:serviceaccount:<namespace>:<name>``.
    """
    host = issuer_host(issuer)
    principal = "arn:%s:iam::%s:oidc-provider/%s" % (partition, account, host)
    return {
        "Version": "2012-10-17",
        "Statement": [
            {
                "Effect": "Allow",
                "Principal": {"Federated": principal},
                "Action": "sts:AssumeRoleWithWebIdentity",
                "Condition": {
                    "StringEquals": {host + ":aud": audience, host + ":sub": list(subjects)}
                },
            }
        ],
    }


def _run_trust_policy(args):
    usage = args.usage.error  # exits with status 2
    role_arn = os.environ.get(ROLE_ARN, "").strip()
    role = role_arn.split(":") if role_arn else []
    account = args.account
    if account is None:
        if len(role) < 5 or not _ACCOUNT.match(role[4]):
            usage(
                "give --account (the role's 12-digit account): %s is %s"
                % (ROLE_ARN, "not a role ARN" if role_arn else "unset")
            )
        account = role[4]
    if not _ACCOUNT.match(account):
        usage("--account %r is not a 12-digit AWS account id" % account)
    partition = args.partition or (role[1] if len(role) > 1 and role[1] else "aws")
    if not _PARTITION.match(partition):
        usage("--partition %r is not a partition such as aws, aws-cn or aws-us-gov" % partition)
    namespaces, names = args.namespace, args.service_account
    if not namespaces or len(namespaces) != len(names):
        usage(
            "give --namespace and --service-account in pairs, at least one pair (got %d "
            "--namespace, %d --service-account)" % (len(namespaces), len(names))
        )
    for name in namespaces + names:
        if not _K8S_NAME.match(name):
            usage("%r is not a Kubernetes namespace or service account name" % name)
    if args.issuer is not None:
        issuer = args.issuer
        if "://" in issuer and not issuer.lower().startswith("https://"):
            usage("--issuer %r must be an https:// URL" % issuer)
    else:
        try:
            claims = token.claims(token.read(os.path.abspath(args.from_token)))
        except TokenFileError as err:
            return _failed("trust-policy", err)
        issuer = claims.get("iss") if claims else None
        if not isinstance(issuer, str) or not issuer:
            return _failed(
                "trust-policy",
                "%r is not a JWT with an iss claim: pass --issuer, the cluster's OIDC issuer "
                "(aws eks describe-cluster --query cluster.identity.oidc.issuer)" % args.from_token,
            )
    subjects = ["system:serviceaccount:%s:%s" % pair for pair in zip(namespaces, names)]
    policy = trust_policy(issuer, account, subjects, partition)
    sys.stdout.write(json.dumps(policy, indent=2) + "\n")
    return 0


# -- doctor -------------------------------------------------------------------------------


def _run_doctor(args):
    report = None if args.json else _print_finding
    if report is not None:
        sys.stdout.write(_header())
        sys.stdout.flush()
    findings = doctor(args.role_arn, args.token_file, args.region, args.sts_endpoint_url, report=report)
    if args.assume_role is not None:
        findings.append(_assume_role_check(args, findings))
        if report is not None:
            report(findings[-1])
    ok = not any(found["status"] == FAIL for found in findings)
    if args.json:
        sys.stdout.write(json.dumps({"ok": ok, "findings": findings}, indent=2) + "\n")
    else:
        sys.stdout.write(_verdict(findings, ok))
    return 0 if ok else 1


def _print_finding(found):
    """Print one finding as soon as it is made: no silence during STS retries."""
    sys.stdout.write(_render_one(found))
    sys.stdout.flush()


def doctor(
    role_arn=None, token_file=None, region_name=None, sts_endpoint_url=None, environ=None,
    report=None,
):
    """What is wrong with IRSA in this process: a list of findings (dicts), in order.

    Each has ``check``, ``status`` (ok, warn, fail, info or skipped), ``detail``, ``fix``
    (None unless there is a problem) and fields of its own.  Arguments win over the
    environment, as in :func:`irsa_session.assumed_role_session`.  Makes at most one
    AssumeRoleWithWebIdentity call (with the library's retries) and one
    GetCallerIdentity call; never probes instance metadata; reports no secret.
    ``report(finding)``, if given, is called with each finding as soon as it is made.
    """
    env = os.environ if environ is None else environ
    findings = []

    def add(*found):
        for each in found:
            findings.append(each)
            if report is not None:
                report(each)

    role_arn, role_from = _pick(role_arn, "--role-arn", env, ROLE_ARN)
    path, path_from = _pick(token_file, "--token-file", env, TOKEN_FILE)
    add(_sources(role_arn, role_from, path, path_from, env), _botocore())
    if (role_arn is None or path is None) and _pod_identity_set(env):
        add(*_pod_identity(region_name, env))
        return findings
    token_found, web_token = _token_file(path, path_from)
    add(token_found)
    claims_found, claims = _claims(web_token)
    add(claims_found, _role(role_arn, role_from), _endpoint(region_name, sts_endpoint_url, env))
    blockers = [found["check"] for found in findings[2:] if found["status"] in (FAIL, SKIPPED)]
    if blockers:
        why = "skipped: %s did not pass" % ", ".join(blockers)
        add(*[_finding(check, SKIPPED, why) for check in ("exchange", "caller-identity", "clock-skew")])
        return findings
    try:
        settings = config.resolve(
            role_arn, path, None, region_name, None, sts_endpoint_url, environ=env
        )
    except ConfigError as err:  # one no check above covers, such as IRSA_SESSION_CACHE_DIR
        add(_finding("settings", FAIL, str(err), "fix the setting it names"))
        return findings
    add(*_exchange(settings, claims))
    return findings


def _assume_role_check(args, findings):
    """The finding of --assume-role: one AssumeRole signed with this pod's credentials."""
    from .chain import doctor_check

    failed = [found["check"] for found in findings if found["status"] == FAIL]
    if failed:
        return _finding("assume-role", SKIPPED, "skipped: %s failed" % ", ".join(failed))
    try:
        source = _chain_source(args)
    except ConfigError as err:
        return _finding("assume-role", FAIL, str(err), "fix the setting it names")
    return doctor_check(
        args.assume_role,
        source=source,
        external_id=args.external_id,
        region_name=args.region,
        sts_endpoint_url=args.sts_endpoint_url,
    )


def _finding(check, status, detail, fix=None, **fields):
    found = {"check": check, "status": status, "detail": detail, "fix": fix}
    found.update(fields)
    return found


def _pick(value, option, env, *names):
    """(value, where it came from), picked as config.resolve does; (None, None) if unset."""
    if value is not None and value.strip():
        return value.strip(), option
    for name in names:
        found = env.get(name, "").strip()
        if found:
            return found, name
    return None, None


def _set(env, name):
    return bool(env.get(name, "").strip())


# 1. Credential sources.


def _sources(role_arn, role_from, path, path_from, env):
    """Which sources are present, and which wins, for irsa_session and for plain boto3."""
    status, fixes, lines, present = OK, [], [], []
    missing = [name for name, value in ((ROLE_ARN, role_arn), (TOKEN_FILE, path)) if not value]
    pod_identity = _pod_identity_set(env)
    if not missing:
        present.append("irsa")
        lines.append(
            "IRSA: role ARN (from %s) and token file (from %s) are set" % (role_from, path_from)
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
                " (%s is set)" % (role_from or path_from) if len(missing) == 1 else "",
            )
        )
        fixes.append(
            "annotate the pod's service account with eks.amazonaws.com/role-arn (Kubeflow: "
            "the profile's AwsIamForServiceAccount plugin does it for default-editor) and "
            "restart the pod, so that the pod identity webhook sets %s and %s; elsewhere pass "
            "--role-arn and --token-file" % (ROLE_ARN, TOKEN_FILE)
        )
    if _set(env, CONTAINER_URI) or _set(env, POD_IDENTITY_TOKEN_FILE):
        present.append("pod-identity")
        lines.append(
            "EKS Pod Identity: %s=%s, %s %s"
            % (
                CONTAINER_URI,
                env.get(CONTAINER_URI, "(unset)"),
                POD_IDENTITY_TOKEN_FILE,
                "is set" if _set(env, POD_IDENTITY_TOKEN_FILE) else "is unset",
            )
        )
    if _set(env, ACCESS_KEY_ID) and _set(env, SECRET_ACCESS_KEY):
        present.append("static-keys")
        lines.append(
            "static keys: %s (%s) and %s%s are set; in botocore's own chain they win over "
            "IRSA, but irsa_session's session ignores them"
            % (
                ACCESS_KEY_ID,
                env[ACCESS_KEY_ID].strip(),
                SECRET_ACCESS_KEY,
                " and %s" % SESSION_TOKEN if _set(env, SESSION_TOKEN) else "",
            )
        )
        if status == OK:
            status = WARN
        fixes.append(
            "remove %s and %s from the pod (its env, or a Secret in envFrom) unless plain "
            "boto3 code in this process should use them rather than the role"
            % (ACCESS_KEY_ID, SECRET_ACCESS_KEY)
        )
    if _set(env, PROFILE):
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
    return _finding(
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
    container = env.get(CONTAINER_URI, "").strip() or env.get(CONTAINER_RELATIVE_URI, "").strip()
    container_provider = getattr(botocore.credentials, "ContainerProvider", None)
    if _set(env, POD_IDENTITY_TOKEN_FILE) and not hasattr(
        container_provider, "ENV_VAR_AUTH_TOKEN_FILE"
    ):
        container = None
        note = "this botocore predates EKS Pod Identity (%s)" % POD_IDENTITY_TOKEN_FILE
    web_identity = (env.get(ROLE_ARN, "").strip() or profile.get("role_arn")) and (
        env.get(TOKEN_FILE, "").strip() or profile.get("web_identity_token_file")
    )
    assume_role = profile.get("role_arn") and (
        profile.get("source_profile") or profile.get("credential_source")
    )
    found = {
        "env": _set(env, ACCESS_KEY_ID) and _set(env, SECRET_ACCESS_KEY)
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
        "container-role": container and "the container credentials endpoint (%s)" % container,
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
        if _set(env, PROFILE):  # botocore's web identity then reads only the profile
            found["assume-role-with-web-identity"] = (
                profile.get("web_identity_token_file") and profile.get("role_arn")
                and "the profile's web_identity_token_file, through botocore's provider"
            )
    installed_winner = next((found[method] for method in installed if found.get(method)), last)
    return chain, winner, problem, note, installed, installed_winner


def _botocore():
    import boto3

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
    versions = {
        "irsa_session": __version__,
        "boto3": boto3.__version__,
        "botocore": botocore.__version__,
        "python": platform.python_version(),
    }
    return _finding("botocore", INFO, detail, web_identity_provider=has, versions=versions)


def _pod_identity_set(env):
    return _set(env, CONTAINER_URI) or _set(env, CONTAINER_RELATIVE_URI)


def _pod_identity(region_name, env):
    """EKS Pod Identity end to end: its settings, its token, one fetch from the agent."""
    from .pod_identity import Agent

    try:
        settings = config.resolve_pod_identity(region_name=region_name, environ=env)
    except ConfigError as err:
        fix = "point %s at the Pod Identity agent (http://169.254.170.23/v1/credentials)" % CONTAINER_URI
        return [_finding("pod-identity", FAIL, str(err), fix)]
    findings = [_finding(
        "pod-identity", OK,
        "the agent at %s; token from %s" % (
            settings.full_uri,
            settings.token_file or (config.CONTAINER_TOKEN if settings.literal_token else "nowhere"),
        ),
        url=settings.full_uri,
    )]
    agent = Agent(settings)
    if settings.token_file is not None:
        try:
            web_token = agent.proof()
        except TokenFileError as err:
            nearby = _nearby(err.path)
            fix = (
                "set %s to %s" % (POD_IDENTITY_TOKEN_FILE, " or ".join(nearby)) if nearby
                else "check the pod's Pod Identity association, and restart the pod"
            )
            return findings + [
                _finding("pod-identity-token", FAIL, str(err), fix, path=settings.token_file),
                _finding("pod-identity-agent", SKIPPED, "skipped: no token to send"),
            ]
        claims = token.claims(web_token) or {}
        findings.append(_finding(
            "pod-identity-token", OK,
            "%s: %d bytes, sub %s, expires %s" % (
                settings.token_file, len(web_token), claims.get("sub", "<none>"),
                _utc(claims["exp"]) if isinstance(claims.get("exp"), (int, float)) else "<no exp>",
            ),
            path=settings.token_file,
        ))
    try:
        issued = agent()
    except Exception as err:  # the library's RefreshError
        detail = str(err) if isinstance(err, IrsaError) else "%s: %s" % (type(err).__name__, err)
        return findings + [_finding(
            "pod-identity-agent", FAIL, _redact.scrub(detail), "do what the message says",
            attempts=getattr(err, "attempts", None),
        )]
    return findings + [_finding(
        "pod-identity-agent", OK,
        "the agent issued credentials: access key id %s, account %s, expiring %s (%s); %d call%s"
        % (issued.access_key, issued.account_id, _utc(issued.expiry), _until(issued.expiry),
           agent.calls, "s"[: agent.calls - 1]),
        access_key_id=issued.access_key, expiration=_utc(issued.expiry), calls=agent.calls,
    )]


# 2. The token file.


def _token_file(path, where):
    """(finding, the token or None)."""
    if path is None:
        detail = "no token file: %s (or --token-file) is unset" % TOKEN_FILE
        return _finding("token-file", SKIPPED, detail), None
    try:
        config.resolve(token_file=path, environ={})
    except ConfigError as err:
        fix = "use the absolute path, normally %s" % DEFAULT_TOKEN_PATH
        return _finding("token-file", FAIL, str(err), fix, path=path), None
    facts, fields = [], {"path": path}
    if os.path.islink(path):
        fields["target"] = os.path.realpath(path)
        facts.append("a symlink to %s" % fields["target"])
    try:
        info = os.stat(path)
    except OSError:
        info = None
    if info is not None:
        fields.update(mode="%04o" % (info.st_mode & 0o7777), uid=info.st_uid, gid=info.st_gid)
        facts.append(
            "mode %s, owner uid %d%s, gid %d%s"
            % (fields["mode"], info.st_uid, _name(pwd and pwd.getpwuid, info.st_uid),
               info.st_gid, _name(grp and grp.getgrgid, info.st_gid))
        )
    me = fields["process"] = _process_ids()
    facts.append(
        "this process runs as uid %s, gid %s, groups %s" % (me["uid"], me["gid"], me["groups"])
    )
    try:
        web_token = token.read(path)
    except TokenFileError as err:
        detail = "\n".join([str(err)] + facts)
        return _finding("token-file", FAIL, detail, _token_fix(err, me), **fields), None
    fields["bytes"] = len(web_token)
    facts[:0] = ["%s (from %s)" % (path, where), "readable, %d bytes" % len(web_token)]
    return _finding("token-file", OK, "\n".join(facts), **fields), web_token


def _token_fix(err, me):
    cause = err.__cause__
    if isinstance(cause, FileNotFoundError):
        nearby = _nearby(err.path)
        if nearby:
            return (
                "no such file, but %s is there: set %s (or --token-file) to it if that is the "
                "projected token" % (" or ".join(nearby), TOKEN_FILE)
            )
        return (
            "check that the pod's service account has the eks.amazonaws.com/role-arn "
            "annotation and the pod its aws-iam-token projected volume; restart the pod"
        )
    if isinstance(cause, PermissionError):
        return (
            "set the pod's securityContext.fsGroup (e.g. to %s) or runAsUser so that uid %s can "
            "read the token: the kubelet makes it readable by the fsGroup" % (me["gid"], me["uid"])
        )
    if isinstance(cause, IsADirectoryError):
        return "point %s at the token file inside the directory" % TOKEN_FILE
    return "point %s at the projected token (%s)" % (TOKEN_FILE, DEFAULT_TOKEN_PATH)


def _nearby(path):
    """Files beside ``path`` (or the webhook's path) that a mistyped path may have meant."""
    found = []
    folder, name = os.path.split(path or "")
    try:
        found = [
            os.path.join(folder, match)
            for match in difflib.get_close_matches(name, sorted(os.listdir(folder)), n=2, cutoff=0.6)
        ]
    except OSError:
        pass
    if not found and path != DEFAULT_TOKEN_PATH and os.path.isfile(DEFAULT_TOKEN_PATH):
        found = [DEFAULT_TOKEN_PATH]
    return found


def _process_ids():
    if not hasattr(os, "getuid"):
        return {"uid": "?", "gid": "?", "groups": []}
    return {"uid": os.getuid(), "gid": os.getgid(), "groups": sorted(os.getgroups())}


def _name(lookup, number):
    """' (root)' for uid or gid 0, through pwd.getpwuid or grp.getgrgid; '' if unnamed."""
    try:
        return " (%s)" % lookup(number)[0]
    except (TypeError, KeyError):  # no lookup on this platform; no such user or group
        return ""


# 3. The token's claims.


def _claims(web_token):
    """(finding, the claims or None)."""
    if web_token is None:
        return _finding("token-claims", SKIPPED, "skipped: no token was read"), None
    claims = token.claims(web_token)
    if claims is None:
        return _finding(
            "token-claims", FAIL,
            "the token is not a JWT (three base64url parts joined by dots): not a projected "
            "service-account token, and STS would refuse it",
            "point %s at the projected token (%s)" % (TOKEN_FILE, DEFAULT_TOKEN_PATH),
        ), None
    problems, lines = [], []  # problems: (status, fix)
    issuer, subject, exp = claims.get("iss"), claims.get("sub"), claims.get("exp")
    audience = claims.get("aud")
    audiences = audience if isinstance(audience, list) else [audience] if audience else []
    fields = {"iss": issuer, "sub": subject, "aud": audiences, "exp": exp}

    lines.append("iss: %s" % (issuer or "missing"))
    if not isinstance(issuer, str) or not issuer:
        problems.append((FAIL, "use the projected token, whose iss is the cluster's OIDC issuer"))
    match = _SUBJECT.match(subject) if isinstance(subject, str) else None
    if match:
        fields.update(namespace=match.group(1), service_account=match.group(2))
        lines.append("sub: %s (namespace %s, service account %s)" % ((subject,) + match.groups()))
    else:
        lines.append("sub: %s (not system:serviceaccount:<namespace>:<name>)" % (subject,))
        problems.append((WARN, "use the service-account token the kubelet projects"))
    lines.append("aud: %s" % (", ".join(str(item) for item in audiences) or "missing"))
    if STS_AUDIENCE not in audiences:
        problems.append((FAIL, (
            "IRSA tokens have the audience %s: check the projected volume's audience (the pod "
            "identity webhook sets %s unless the service account has an "
            "eks.amazonaws.com/audience annotation), or add this audience to the role's IAM "
            "OIDC provider" % (STS_AUDIENCE, STS_AUDIENCE)
        )))
    now = time.time()
    if not isinstance(exp, (int, float)) or isinstance(exp, bool):
        lines.append("exp: missing")
        problems.append((WARN, "use the projected token, which always has exp"))
    elif exp <= now:
        fields["expires_in"] = int(exp - now)
        lines.append(
            "exp: %s (expired %s ago: the kubelet should have rotated it)"
            % (_utc(exp), _span(now - exp))
        )
        problems.append((FAIL, (
            "the kubelet rewrites the token before it expires: check the kubelet on this node "
            "and the pod's projected token volume; a restarted pod gets a fresh token"
        )))
    else:
        fields["expires_in"] = int(exp - now)
        lines.append("exp: %s (%s)" % (_utc(exp), _until(exp, now)))
    lines.append("(decoded, signature not checked)")
    statuses = [status for status, _ in problems]
    status = FAIL if FAIL in statuses else WARN if statuses else OK
    fix = "\n".join(fix for _, fix in problems) or None
    return _finding("token-claims", status, "\n".join(lines), fix, **fields), claims


# 4. The role.


def _role(role_arn, where):
    if role_arn is None:
        return _finding("role-arn", SKIPPED, "no role ARN: %s (or --role-arn) is unset" % ROLE_ARN)
    try:
        config.resolve(role_arn=role_arn, environ={})
    except ConfigError as err:
        fix = (
            "fix the service account's eks.amazonaws.com/role-arn annotation (or --role-arn) "
            "and restart the pod"
        )
        return _finding("role-arn", FAIL, str(err), fix, role_arn=role_arn)
    parts = role_arn.split(":")
    detail = "%s (from %s): account %s, partition %s" % (role_arn, where, parts[4], parts[1])
    return _finding(
        "role-arn", OK, detail, role_arn=role_arn, account=parts[4], partition=parts[1]
    )


# 5. The STS endpoint.


def _endpoint(region_name, sts_endpoint_url, env):
    names = (
        REGION, DEFAULT_REGION, ENDPOINT_URL_STS, ENDPOINT_URL, STS_REGIONAL_ENDPOINTS,
        IGNORE_CONFIGURED_ENDPOINT_URLS,
    )
    only = dict((name, env[name]) for name in names if name in env)
    try:
        settings = config.resolve(
            region_name=region_name, sts_endpoint_url=sts_endpoint_url, environ=only
        )
    except ConfigError as err:
        fix = (
            "give an https:// URL of STS (or plain http only to 127.0.0.1, ::1 or "
            "localhost), without user info, or unset the variable it names"
        )
        return _finding("sts-endpoint", FAIL, str(err), fix)
    url = settings.sts_endpoint_url
    region, region_from = _pick(region_name, "--region", env, REGION, DEFAULT_REGION)
    ignored = env.get(IGNORE_CONFIGURED_ENDPOINT_URLS, "").strip().lower() == "true"
    variables = () if ignored else (ENDPOINT_URL_STS, ENDPOINT_URL)
    _, url_from = _pick(sts_endpoint_url, "--sts-endpoint-url", env, *variables)
    fields = {"url": url, "region": region}
    if url_from is not None:
        detail = "%s (set by %s)" % (url, url_from)
        return _finding("sts-endpoint", OK, detail, reason=url_from, **fields)
    if ignored and (_set(env, ENDPOINT_URL_STS) or _set(env, ENDPOINT_URL)):
        fields["ignored"] = [name for name in (ENDPOINT_URL_STS, ENDPOINT_URL) if _set(env, name)]
        detail = "%s: %s=true, so %s %s ignored" % (
            url, IGNORE_CONFIGURED_ENDPOINT_URLS, " and ".join(fields["ignored"]),
            "is" if len(fields["ignored"]) == 1 else "are",
        )
        return _finding("sts-endpoint", OK, detail, reason="ignored", **fields)
    if region is None:
        detail = "%s, the global endpoint: no region is set (%s, %s)" % (
            url, REGION, DEFAULT_REGION,
        )
        fix = (
            "set %s (the pod identity webhook sets it, with %s=regional) so that STS calls "
            "stay in the pod's region" % (REGION, STS_REGIONAL_ENDPOINTS)
        )
        return _finding("sts-endpoint", WARN, detail, fix, reason="no-region", **fields)
    if url == config.sts_endpoint(None):
        detail = "%s, the global endpoint: %s=legacy (region %s from %s)" % (
            url, STS_REGIONAL_ENDPOINTS, region, region_from,
        )
        return _finding("sts-endpoint", OK, detail, reason="legacy", **fields)
    detail = "%s, the regional endpoint of %s (from %s)" % (url, region, region_from)
    known = _known_regions()
    if known and region not in known:
        near = difflib.get_close_matches(region, sorted(known), n=1, cutoff=0.8)
        if near:
            detail += "; botocore %s knows no region %s: did you mean %s?" % (
                botocore.__version__, region, near[0],
            )
            fix = "set %s (or --region) to %s" % (region_from, near[0])
            return _finding("sts-endpoint", FAIL, detail, fix, reason="unknown-region", **fields)
        detail += (
            "; botocore %s knows no region %s (a region newer than this botocore, or a "
            "typo)" % (botocore.__version__, region)
        )
        fix = "check %s: the exchange below fails after its retries if the region does not exist" % region_from
        return _finding("sts-endpoint", WARN, detail, fix, reason="unknown-region", **fields)
    return _finding("sts-endpoint", OK, detail, reason="regional", **fields)


def _known_regions():
    """Every region of every partition in botocore's endpoint data (empty if unreadable)."""
    try:
        loader = botocore.session.get_session().get_component("data_loader")
        partitions = loader.load_data("endpoints").get("partitions", [])
    except Exception:  # no data: no check rather than a false alarm
        return frozenset()
    return frozenset(region for each in partitions for region in each.get("regions", {}))


# 6. The exchange, GetCallerIdentity and the clock; 7. the trust policy on AccessDenied.

_TRUST_FIX = (
    "add a statement like the one below to the role's trust policy (IAM console: the role's "
    "Trust relationships)"
)
_EXCHANGE_FIXES = {
    "AccessDenied": _TRUST_FIX,
    "IDPRejectedClaim": _TRUST_FIX,
    "InvalidIdentityToken": (
        "create the IAM OIDC identity provider for the token's issuer, with audience %s, in "
        "the role's account (eksctl utils associate-iam-oidc-provider)" % STS_AUDIENCE
    ),
    "ExpiredTokenException": (
        "check the kubelet on this node and the pod's projected token volume; a restarted "
        "pod gets a fresh token"
    ),
    None: (
        "allow the pod's egress to the endpoint, check the region, or set %s (e.g. to a VPC "
        "endpoint of STS)" % ENDPOINT_URL_STS
    ),
}


def _exchange(settings, claims):
    """The findings of one exchange, of GetCallerIdentity with its credentials, of the clock."""
    exchange = sts.Exchange(settings)
    try:
        issued = exchange()
    except Exception as err:  # the library's RefreshError, or botocore failing to start
        code = getattr(err, "code", None)
        detail = str(err) if isinstance(err, IrsaError) else "%s: %s" % (type(err).__name__, err)
        found = [
            _finding(
                "exchange", FAIL, _redact.scrub(detail),
                _EXCHANGE_FIXES.get(code, "do what the message says"),
                code=code,
                attempts=getattr(err, "attempts", None),
                endpoint=settings.sts_endpoint_url,
            ),
            _finding("caller-identity", SKIPPED, "skipped: no credentials"),
            _finding("clock-skew", SKIPPED, "skipped: no answer from STS"),
        ]
        if code in _TRUST_CODES:
            found.append(_trust(settings.role_arn, claims))
        return found
    answered = time.time()
    detail = (
        "STS (%s) issued credentials for %s, session name %s: access key id %s, expiring %s "
        "(%s); %d call%s" % (
            settings.sts_endpoint_url, settings.role_arn, settings.session_name,
            issued.access_key, _utc(issued.expiry), _until(issued.expiry), exchange.calls,
            "s"[: exchange.calls - 1],
        )
    )
    return [
        _finding(
            "exchange", OK, detail,
            access_key_id=issued.access_key,
            expiration=_utc(issued.expiry),
            session_name=settings.session_name,
            calls=exchange.calls,
            endpoint=settings.sts_endpoint_url,
        ),
        _caller_identity(settings, issued),
        _skew(exchange.last_date, answered),
    ]


def _caller_identity(settings, issued):
    try:
        client = botocore.session.Session().create_client(
            "sts",
            region_name=settings.region_name or "us-east-1",
            endpoint_url=settings.sts_endpoint_url,
            aws_access_key_id=issued.access_key,
            aws_secret_access_key=issued.secret_key,
            aws_session_token=issued.token,
            config=Config(
                retries={"max_attempts": 0},
                connect_timeout=sts.CONNECT_TIMEOUT,
                read_timeout=sts.READ_TIMEOUT,
            ),
        )
        identity = client.get_caller_identity()
    except Exception as err:
        return _finding(
            "caller-identity", FAIL,
            "GetCallerIdentity with the issued credentials failed: %s: %s"
            % (type(err).__name__, _redact.scrub(str(err))),
            "a clock far off STS's makes signed calls fail: see clock-skew",
        )
    detail = "%s (account %s); the credentials expire %s (%s)" % (
        identity["Arn"], identity["Account"], _utc(issued.expiry), _until(issued.expiry),
    )
    return _finding(
        "caller-identity", OK, detail,
        arn=identity["Arn"], account=identity["Account"], expiration=_utc(issued.expiry),
    )


def _skew(date, local):
    """The clock-skew finding for STS's Date header ``date``, received at ``local`` (epoch)."""
    if not date:
        return _finding("clock-skew", SKIPPED, "STS's answer had no Date header")
    try:
        theirs = email.utils.parsedate_to_datetime(date)
    except (TypeError, ValueError):
        return _finding("clock-skew", SKIPPED, "STS's Date header %r is not a date" % date)
    if theirs.tzinfo is None:
        theirs = theirs.replace(tzinfo=datetime.timezone.utc)
    skew = local - (theirs - _EPOCH).total_seconds()
    detail = "this machine's clock is %.0f s %s STS's (Date: %s)" % (
        abs(skew), "ahead of" if skew >= 0 else "behind", date,
    )
    fields = {"skew_seconds": round(skew, 1), "sts_date": date}
    if abs(skew) <= SKEW_WARN:
        return _finding("clock-skew", OK, detail, **fields)
    status = WARN if abs(skew) <= SKEW_FAIL else FAIL
    fix = (
        "sync this node's clock (chrony or NTP; on EC2, the Amazon Time Sync Service): "
        "SigV4 refuses requests more than 5 minutes off"
    )
    return _finding("clock-skew", status, detail, fix, **fields)


def _trust(role_arn, claims):
    if not claims or not claims.get("iss") or not claims.get("sub"):
        detail = "the token has no iss or sub claim to write a trust policy for"
        return _finding("trust-policy", INFO, detail)
    parts = role_arn.split(":")
    policy = trust_policy(claims["iss"], parts[4], [claims["sub"]], parts[1])
    detail = (
        "a statement of role %s's trust policy that admits this token ('irsa-session "
        "trust-policy' prints a whole policy):" % role_arn
    )
    return _finding("trust-policy", INFO, detail, statement=policy["Statement"][0])


def _header():
    versions = _botocore()["versions"]
    return (
        "irsa-session doctor: irsa_session %(irsa_session)s, boto3 %(boto3)s, "
        "botocore %(botocore)s, Python %(python)s\n\n" % versions
    )


def _render_one(found):
    indent = " " * 11
    lines = found["detail"].split("\n")
    out = ["%-10s %s: %s\n" % ("[%s]" % found["status"], found["check"], lines[0])]
    if "statement" in found:
        lines += json.dumps(found["statement"], indent=2).split("\n")
    if found["fix"]:
        fixes = found["fix"].split("\n")
        lines += ["fix: " + fixes[0]] + ["     " + fix for fix in fixes[1:]]
    out.extend(indent + line + "\n" for line in lines[1:])
    return "".join(out)


def _verdict(findings, ok):
    if ok:
        return "\nOK: IRSA works in this process.\n"
    failed = [found["check"] for found in findings if found["status"] == FAIL]
    return "\nPROBLEMS: %s failed.\n" % ", ".join(failed)


def _utc(epoch):
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(epoch))


def _span(seconds):
    """'45 s', '59 min', '23 h 53 min'."""
    seconds = int(abs(seconds))
    if seconds < 120:
        return "%d s" % seconds
    minutes = seconds // 60
    if minutes < 120:
        return "%d min" % minutes
    return "%d h %d min" % (minutes // 60, minutes % 60)


def _until(epoch, now=None):
    left = epoch - (time.time() if now is None else now)
    return "in %s" % _span(left) if left >= 0 else "%s ago" % _span(left)
