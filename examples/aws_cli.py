"""The AWS CLI with IRSA credentials from ``irsa-session credential-process``.

Any tool that reads AWS config files (the AWS CLI, the SDKs of other languages,
Terraform) can use the library's credentials through a profile:

    [profile irsa]
    credential_process = irsa-session credential-process

    aws --profile irsa s3 cp s3://BUCKET/KEY .

Naming the profile (``--profile``, not ``AWS_PROFILE``) matters where the pod's
variables are set: the CLI then ignores ``AWS_ROLE_ARN`` and
``AWS_WEB_IDENTITY_TOKEN_FILE`` itself and runs the process, which reads them.
With ``IRSA_SESSION_CACHE_DIR`` set, one STS call serves every ``aws`` run until
the credentials are due for refresh; without it each run makes its own call.

    python examples/aws_cli.py        # needs awscli, irsa-session, and moto's server

Run like this, the file plays EKS on 127.0.0.1 (examples/loopback.py): fake STS,
moto's server as S3, the pod's variables; it runs the ``aws`` commands below in a
child process, then checks every download, counts STS calls (and that each came
from irsa-session, not from the CLI's own web-identity provider), and searches
the output for secrets.  It prints its figures and exits non-zero on any failure.
"""

import json
import os
import subprocess
import sys
import time

BUCKET = "cli-irsa-example"
KEY = "reports/2026-11.csv"
BODY = b"month,rows\n2026-11,1234\n" * 100
RUNS = 3
PROFILE = "[profile irsa]\ncredential_process = irsa-session credential-process\n"


def aws(*args, **extra_env):
    """Run ``aws --profile irsa ARGS``; return (exit code, output, seconds)."""
    env = dict(os.environ, **extra_env)
    started = time.time()
    done = subprocess.run(
        ["aws", "--profile", "irsa"] + list(args),
        env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, timeout=120,
    )
    return done.returncode, done.stdout.decode("utf-8", "replace"), time.time() - started


def main(out):
    """The pod's side: a profile, then ``aws s3 cp`` without and with the node-wide cache."""
    config = os.path.join(out, "aws-config")
    with open(config, "w") as handle:
        handle.write(PROFILE)
    os.environ["AWS_CONFIG_FILE"] = config
    s3 = os.environ["AWS_ENDPOINT_URL_S3"]  # moto here; unset in a real pod
    result = {"runs": []}

    code, output, _ = aws("configure", "list")
    print("$ aws --profile irsa configure list\n%s" % output)
    result["configure_list"] = output

    code, output, _ = aws("sts", "get-caller-identity", "--output", "json")
    print("$ aws --profile irsa sts get-caller-identity\n%s" % output)
    result["caller"] = json.loads(output)["Arn"] if code == 0 else output

    cache = os.path.join(out, "irsa-cache")
    for label, extra in (("no cache", {}), ("cache", {"IRSA_SESSION_CACHE_DIR": cache})):
        for number in range(RUNS):
            target = os.path.join(out, "download-%s-%d.csv" % (label.replace(" ", "-"), number))
            code, output, seconds = aws(
                "--endpoint-url", s3, "s3", "cp", "s3://%s/%s" % (BUCKET, KEY), target, **extra
            )
            print("$ aws --profile irsa s3 cp s3://%s/%s %s   (%s)\n%s"
                  % (BUCKET, KEY, os.path.basename(target), label, output.rstrip()))
            ok = code == 0 and os.path.exists(target)
            if ok:
                with open(target, "rb") as handle:
                    ok = handle.read() == BODY
            result["runs"].append(
                {"cache": label, "ok": ok, "code": code, "seconds": seconds, "time": time.time()}
            )
    with open(os.path.join(out, "result.json"), "w") as handle:
        json.dump(result, handle)


def play_eks():
    """Run main() in a pod's environment on loopback; check and print its figures."""
    from loopback import LoopbackPod

    with LoopbackPod() as pod:
        import boto3

        # Put the object with moto's test keys (the pod only reads it).
        s3 = boto3.client(
            "s3", endpoint_url=pod.s3.url, region_name="us-west-2",
            aws_access_key_id="testing", aws_secret_access_key="testing",
        )
        s3.create_bucket(Bucket=BUCKET, CreateBucketConfiguration={"LocationConstraint": "us-west-2"})
        s3.put_object(Bucket=BUCKET, Key=KEY, Body=BODY)
        code = pod.run(__file__)
        result = pod.result()
        calls = pod.assume_calls()
        leaks = pod.leaks()

    problems = []
    runs = result.get("runs", [])
    if "custom-process" not in result.get("configure_list", ""):
        problems.append("'aws configure list' does not name custom-process as the credential source")
    caller = result.get("caller", "")
    if not str(caller).startswith("arn:aws:sts::111122223333:assumed-role/ray-reader/"):
        problems.append("get-caller-identity gave %r" % (caller,))
    # Calls before the first cached run belong to the uncached ones (configure
    # list, get-caller-identity and the RUNS copies: one each).
    first_cached = min([run["time"] - run["seconds"] for run in runs if run["cache"] == "cache"] or [0])
    uncached = [call for call in calls if call["time"] < first_cached]
    cached = [call for call in calls if call["time"] >= first_cached]
    agents = sorted({call["headers"].get("User-Agent", "").split(" ")[0] for call in calls})
    for label in ("no cache", "cache"):
        mine = [run for run in runs if run["cache"] == label]
        print("aws s3 cp:   %d of %d ok (%s), %.2f s median each"
              % (sum(run["ok"] for run in mine), len(mine), label,
                 sorted(run["seconds"] for run in mine)[len(mine) // 2] if mine else 0))
    print("STS calls:   %d AssumeRoleWithWebIdentity: %d for %d aws runs without the cache, "
          "%d for %d runs with it" % (len(calls), len(uncached), RUNS + 2, len(cached), RUNS))
    print("callers:     %s" % ", ".join(agents))
    print("leaks:       %d (secrets or the token in the output)" % len(leaks))

    if len(runs) != 2 * RUNS or not all(run["ok"] for run in runs):
        problems.append("downloads failed: %s" % [run for run in runs if not run["ok"]])
    if len(uncached) != RUNS + 2:
        problems.append("%d STS calls without the cache, expected %d (one per aws run)"
                        % (len(uncached), RUNS + 2))
    if len(cached) != 1:
        problems.append("%d STS calls with the cache, expected 1" % len(cached))
    if any(agent.startswith("aws-cli") for agent in agents):
        problems.append("the CLI called STS itself (%s): credential_process was not used" % agents)
    if leaks:
        problems.append("secrets in the output: %s" % leaks)
    return pod.verdict(problems, code)


if __name__ == "__main__":
    if sys.argv[1:2] == ["--driver"]:
        main(sys.argv[2])
    else:
        sys.exit(play_eks())
