"""The argument parser and :func:`main`, which runs the command it names."""

import argparse

from .._version import __version__
from ..config import DEFAULT_REGION, ENDPOINT_URL, ENDPOINT_URL_STS, REGION, ROLE_ARN, TOKEN_FILE
from . import commands
from .commands import PROG
from .doctor import run as run_doctor  # not ``from . import doctor``: that name is the function

__all__ = ["main"]


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


def _parser():
    parser = argparse.ArgumentParser(
        prog=PROG,
        description="IRSA (IAM Roles for Service Accounts) credentials for EKS pods, on "
        "every boto3 from 1.4.8. 'irsa-session COMMAND --help' tells more.",
    )
    parser.add_argument("--version", action="version", version="%s %s" % (PROG, __version__))
    subparsers = parser.add_subparsers(dest="command", metavar="COMMAND")
    subparsers.required = True

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

    command = subparsers.add_parser(
        "doctor", parents=[settings, chaining],
        help="tell what is wrong with IRSA in this process (prints no secret)",
        description="Check the credential sources, the token file and its claims, the role "
        "ARN and the STS endpoint; make one AssumeRoleWithWebIdentity call and one "
        "GetCallerIdentity call; say what to fix. Prints no secret. Exit status 1 when a "
        "check fails.",
    )
    command.add_argument("--json", action="store_true", help="print the findings as JSON")
    command.set_defaults(run=run_doctor)

    command = subparsers.add_parser(
        "credential-process", parents=[settings, chaining],
        help="print credentials for an AWS profile's credential_process",
        description="Print credentials as the JSON that 'credential_process = irsa-session "
        "credential-process' in an AWS config profile expects, for the AWS CLI and any SDK. "
        "On error: the message on stderr, exit status 1, nothing on stdout.",
    )
    command.set_defaults(run=commands.run_credential_process)

    command = subparsers.add_parser(
        "serve", parents=[settings, chaining],
        help="serve the credentials on a container-credentials endpoint for every SDK in the pod",
        description="Serve the credentials on http://127.0.0.1:PORT/v1/credentials, the "
        "protocol of AWS_CONTAINER_CREDENTIALS_FULL_URI (the EKS Pod Identity agent's), so "
        "native readers and Java, Go and C++ programs share one STS call per refresh. "
        "Prints the variables a client needs (or writes them to --env-file), then serves "
        "until SIGTERM or SIGINT. GET /healthz answers 200 once credentials can be served.",
    )
    command.add_argument("--port", type=int, default=0, help="TCP port on 127.0.0.1 (default: a free one)")
    command.add_argument(
        "--env-file", metavar="PATH",
        help="also write the variables as KEY=value lines to PATH (mode 0600), for a sidecar's "
        "peers to read",
    )
    command.add_argument(
        "--token-dir", metavar="DIR",
        help="write the endpoint's token to DIR/token (mode 0600) instead of a new private "
        "folder: a volume the app's container mounts too (DIR must exist)",
    )
    command.set_defaults(run=commands.run_serve)

    command = subparsers.add_parser(
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
    command.set_defaults(run=commands.run_env)

    command = subparsers.add_parser(
        "trust-policy",
        help="print the role trust policy that admits given service accounts",
        description="Print the IAM role trust policy (JSON) that lets the given service "
        "accounts assume the role through the cluster's OIDC provider: the policy that "
        "Kubeflow's profile controller maintains. With --pod-identity, the trust policy "
        "of a role for EKS Pod Identity.",
    )
    issuer = command.add_mutually_exclusive_group(required=True)
    issuer.add_argument("--issuer", metavar="URL", help="the cluster's OIDC issuer URL")
    issuer.add_argument("--from-token", metavar="FILE", help="take the issuer from this token")
    issuer.add_argument(
        "--pod-identity", action="store_true",
        help="the trust policy of a role for EKS Pod Identity instead (service principal "
        "pods.eks.amazonaws.com; associations, not the policy, name the service accounts)",
    )
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
    command.set_defaults(run=commands.run_trust_policy, usage=command)
    return parser
