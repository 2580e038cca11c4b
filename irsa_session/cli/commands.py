"""``credential-process``, ``env`` and ``trust-policy``; the session that signs ``--assume-role``."""

import json
import os
import re
import shlex
import sys

from .. import _redact, config, sts, token
from ..config import (
    ACCESS_KEY_ID,
    CONTAINER_FULL_URI,
    ROLE_ARN,
    SECRET_ACCESS_KEY,
    SESSION_TOKEN,
    TOKEN_FILE,
)
from ..errors import ConfigError, TokenFileError
from ..sts import issuer_host, oidc_principal
from .render import cli_words, until, utc

__all__ = [
    "PROG",
    "STS_AUDIENCE",
    "run_credential_process",
    "run_env",
    "run_trust_policy",
    "trust_policy",
    "issuer_host",
    "irsa_options",
    "chain_options",
    "chain_source",
    "failed",
]

PROG = "irsa-session"
#: The audience of IRSA tokens, and of the trust policy's ``:aud`` condition.
STS_AUDIENCE = "sts.amazonaws.com"

_ACCOUNT = re.compile(r"^\d{12}$")
_PARTITION = re.compile(r"^aws[a-z-]*$")
_K8S_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9.-]*$")


# -- credential-process and env -------------------------------------------------------


def run_credential_process(args):
    try:
        frozen, expiry = _credentials(args)
    except Exception as err:  # the library's message (or botocore's), never a traceback
        return failed("credential-process", err)
    document = {
        "Version": 1,
        "AccessKeyId": frozen.access_key,
        "SecretAccessKey": frozen.secret_key,
        "SessionToken": frozen.token,
        "Expiration": utc(expiry),
    }
    sys.stdout.write(json.dumps(document) + "\n")
    return 0


def run_serve(args):
    """The serve command: an endpoint until SIGTERM or SIGINT."""
    import signal
    import threading

    from .._serve import start

    try:
        options = dict((k, v) for k, v in irsa_options(args).items() if v is not None)
        if args.assume_role is not None:
            options.update(assume_role=args.assume_role, external_id=args.external_id)
        endpoint = start(args.port, False, args.token_dir, options)
        endpoint.credentials.get_frozen_credentials()  # fail now, not at a client's first ask
    except Exception as err:
        return failed("serve", err)
    stop = threading.Event()
    for number in (signal.SIGTERM, signal.SIGINT):
        signal.signal(number, lambda *_: stop.set())
    lines = "".join("%s=%s\n" % pair for pair in sorted(endpoint.environ().items()))
    if args.env_file:
        descriptor = os.open(args.env_file, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(descriptor, "w") as handle:
            handle.write(lines)
    sys.stdout.write("".join("export %s\n" % line for line in lines.splitlines()))
    sys.stdout.flush()
    sys.stderr.write("%s serve: serving at %s until SIGTERM or SIGINT\n" % (PROG, endpoint.url))
    sys.stderr.flush()
    while not stop.wait(1.0):
        pass
    endpoint.close()
    return 0


def run_env(args):
    try:
        frozen, expiry = _credentials(args)
    except Exception as err:
        return failed("env", err)
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
        "credential-process', whose credentials refresh.\n" % (PROG, utc(expiry), until(expiry))
    )
    return 0


def _dotenv_quote(value):
    """``value`` double-quoted for a .env file, so no character of it can end the line."""
    escaped = value.replace("\\", "\\\\").replace('"', '\\"').replace("$", "\\$")
    return '"%s"' % escaped.replace("\n", "\\n").replace("\r", "\\r")


def _credentials(args):
    """(frozen credentials, expiry in seconds since the epoch), from the library's registry."""
    from ..sessions import _credentials_for, refreshable_credentials

    if args.assume_role is not None:
        from ..chain import assume_role

        credentials = assume_role(
            args.assume_role, source=chain_source(args), **chain_options(args)
        ).get_credentials()
    elif args.external_id is not None:
        raise ConfigError("--external-id goes with --assume-role")
    else:
        irsa = config.resolve(**irsa_options(args))
        if not config.missing(irsa):
            check_region(args)
        pod_identity = config.resolve_pod_identity(region_name=args.region) if config.missing(irsa) else None
        if pod_identity is not None:  # IRSA wins when both are set, as for the session
            credentials = _credentials_for(pod_identity)
        else:
            credentials = refreshable_credentials(**irsa_options(args))
    return credentials.get_frozen_credentials(), sts._epoch(credentials.expires_at)


def check_region(args):
    """A region that botocore does not know and that is one typo from one it knows: a
    ConfigError at once, instead of the retries of an STS endpoint that does not exist."""
    region, region_from = config.pick("region_name", args.region, None, "--region")
    endpoint, _ = config.pick("sts_endpoint_url", args.sts_endpoint_url, None, "--sts-endpoint-url")
    near = near_region(region) if region and not endpoint else None
    if near:
        raise ConfigError(
            "botocore %s knows no region %r (from %s): did you mean %s? Set %s to %s"
            % (botocore_version(), region, region_from, near,
               "--region" if region_from == "--region" else region_from + " (or --region)", near)
        )


def near_region(region):
    """The region botocore knows that ``region`` is a typo of, or None."""
    import difflib

    known = known_regions()
    if not known or region in known:
        return None
    near = difflib.get_close_matches(region, sorted(known), n=1, cutoff=0.8)
    return near[0] if near else None


def known_regions():
    """Every region of every partition in botocore's endpoint data (empty if unreadable)."""
    import botocore.session

    try:
        loader = botocore.session.get_session().get_component("data_loader")
        partitions = loader.load_data("endpoints").get("partitions", [])
    except Exception:  # no data: no check rather than a false alarm
        return frozenset()
    return frozenset(region for each in partitions for region in each.get("regions", {}))


def botocore_version():
    import botocore

    return botocore.__version__


def irsa_options(args):
    """The settings options, as keyword arguments of the library's functions."""
    return dict(
        role_arn=args.role_arn,
        token_file=args.token_file,
        region_name=args.region,
        sts_endpoint_url=args.sts_endpoint_url,
    )


def chain_options(args):
    """The options of --assume-role's hop, as keyword arguments of the chain's functions."""
    return dict(
        external_id=args.external_id, region_name=args.region, sts_endpoint_url=args.sts_endpoint_url
    )


def chain_source(args):
    """The session that signs --assume-role: IRSA, else EKS Pod Identity, as for the session."""
    from ..sessions import resolve_source

    source = resolve_source(**irsa_options(args))
    if source._irsa_settings is None:
        raise ConfigError(
            "--assume-role needs credentials to sign with: neither IRSA (%s and %s) nor EKS "
            "Pod Identity (%s) is configured" % (ROLE_ARN, TOKEN_FILE, CONTAINER_FULL_URI)
        )
    return source


def failed(command, err):
    """Say on stderr why ``command`` failed; return its exit status."""
    sys.stderr.write("%s %s: error: %s\n" % (PROG, command, cli_words(_redact.scrub(str(err)))))
    return 1


# -- trust-policy -----------------------------------------------------------------------


def trust_policy(issuer, account, subjects, partition="aws", audience=STS_AUDIENCE):
    """The role trust policy (a dict) admitting ``issuer``'s tokens whose sub is in ``subjects``.

    ``subjects`` are whole ``sub`` claims: ``system:serviceaccount:<namespace>:<name>``.
    """
    host = issuer_host(issuer)
    principal = oidc_principal(host, account, partition)
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


#: The trust policy of a role that EKS Pod Identity's associations hand to pods.
POD_IDENTITY_TRUST = {
    "Version": "2012-10-17",
    "Statement": [{
        "Sid": "AllowEksAuthToAssumeRoleForPodIdentity",
        "Effect": "Allow",
        "Principal": {"Service": "pods.eks.amazonaws.com"},
        "Action": ["sts:AssumeRole", "sts:TagSession"],
    }],
}


def run_trust_policy(args):
    usage = args.usage.error  # exits with status 2
    if args.pod_identity:
        given = [flag for flag, value in (("--account", args.account), ("--partition", args.partition),
                                          ("--namespace", args.namespace),
                                          ("--service-account", args.service_account)) if value]
        if given:
            usage("--pod-identity takes no %s: EKS Pod Identity names the namespace and service "
                  "account in an association (aws eks create-pod-identity-association --cluster-name "
                  "... --namespace ... --service-account ... --role-arn ...), not in the trust policy"
                  % " or ".join(given))
        sys.stdout.write(json.dumps(POD_IDENTITY_TRUST, indent=2) + "\n")
        return 0
    role_arn = config.pick("role_arn")[0] or ""
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
            return failed("trust-policy", err)
        issuer = claims.get("iss") if claims else None
        if not isinstance(issuer, str) or not issuer:
            return failed(
                "trust-policy",
                "%r is not a JWT with an iss claim: pass --issuer, the cluster's OIDC issuer "
                "(aws eks describe-cluster --query cluster.identity.oidc.issuer)" % args.from_token,
            )
    subjects = ["system:serviceaccount:%s:%s" % pair for pair in zip(namespaces, names)]
    policy = trust_policy(issuer, account, subjects, partition)
    sys.stdout.write(json.dumps(policy, indent=2) + "\n")
    return 0
