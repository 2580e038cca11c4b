"""The script of the Ray docs' IRSA pitfall, unchanged, working on Ray 2.3 with boto3 1.4.8.

KubeRay's "IAM roles for service account" page shows ``boto3_example_1.py``
(``boto3.client('s3')`` then ``s3.download_file(...)``) failing in
``rayproject/ray:2.3.0`` pods: botocore 1.8.50 cannot trade the pod's token for
credentials.  Here the same lines run as Ray tasks, unchanged; the task adds one
line before them, ``irsa_session.install()`` (Ray 2.3 has no
``worker_process_setup_hook``), after which boto3's default session has
refreshing IRSA credentials, shared by every client in the worker process.
A first task without that line shows the pitfall (``NoCredentialsError``).

    python examples/ray_seed_script.py    # needs ray, boto3, irsa-session, and moto's server

Run like this, it plays EKS on 127.0.0.1 with the stand-in of loopback.py, and runs
the driver as a pod would.  botocore 1.8 reads no ``AWS_ENDPOINT_URL_S3``, so the
stand-in gives the pod its loopback S3 the way botocore 1.8 does know: an
``endpoints.json`` on ``AWS_DATA_PATH`` that names 127.0.0.1 as S3 for us-west-2
(a real pod needs nothing of the kind: the real S3 is botocore's default).
"""

import json
import os
import sys
import tempfile
import time

import irsa_session
import ray

BUCKET = "ray-irsa-seed"
TASKS = 20


def content(key):
    """What the driver uploads under ``key``."""
    return ("%s\n" % key).encode() * 200


def boto3_example_1(bucket_name, key, filename):
    """``boto3_example_1.py`` of the pitfall, as it is."""
    import boto3

    s3 = boto3.client('s3')
    s3.download_file(bucket_name, key, filename)


@ray.remote
def seed_task(key, install=True):
    """Run the pitfall's script in a Ray worker, after ``irsa_session.install()`` (or not)."""
    if install:
        irsa_session.install()  # the one added line
    with tempfile.TemporaryDirectory() as folder:
        filename = os.path.join(folder, "object")
        try:
            boto3_example_1(BUCKET, key, filename)
        except Exception as err:
            return {"pid": os.getpid(), "ok": False, "error": "%s: %s" % (type(err).__name__, err)}
        with open(filename, "rb") as handle:
            ok = handle.read() == content(key)
    import boto3

    credentials = boto3.DEFAULT_SESSION.get_credentials()
    return {
        "pid": os.getpid(),
        "ok": ok,
        "method": credentials.method,
        "access_key": credentials.access_key,
    }


def main(out):
    """The driver: upload objects, run the script without and with install(), save the pickles."""
    started = time.time()
    irsa_session.install()
    import boto3

    s3 = boto3.client('s3')
    s3.create_bucket(Bucket=BUCKET, CreateBucketConfiguration={"LocationConstraint": "us-west-2"})
    keys = ["seed-%03d.txt" % number for number in range(TASKS)]
    for key in keys:
        s3.put_object(Bucket=BUCKET, Key=key, Body=content(key))

    ray.init(
        num_cpus=2,
        include_dashboard=False,
        object_store_memory=200 * 1024 * 1024,
        _node_ip_address="127.0.0.1",
        _temp_dir=os.path.join(out, "ray"),
    )
    try:
        # First, in a fresh worker, the script alone: the pitfall.
        without = ray.get(seed_task.remote(keys[0], install=False), timeout=120)
        tasks = ray.get([seed_task.remote(key) for key in keys], timeout=300)
        from ray_legacy import ray_function_table

        pickles = {"seed_task (as exported)": seed_task._pickled_function or b""}
        for key, blob in ray_function_table().items():
            pickles["function table " + key] = blob
    finally:
        ray.shutdown()

    from ray_legacy import save_pickles

    save_pickles(out, pickles)
    result = {
        "without_install": without,
        "tasks": tasks,
        "driver_pid": os.getpid(),
        "seconds": time.time() - started,
    }
    with open(os.path.join(out, "result.json"), "w") as handle:
        json.dump(result, handle)


# -- a stand-in for EKS on 127.0.0.1 (a real pod has none of this) --------------


def loopback_s3_endpoints(pod):
    """Make botocore 1.8 find S3 for us-west-2 at the loopback S3, through AWS_DATA_PATH."""
    import botocore

    with open(os.path.join(os.path.dirname(botocore.__file__), "data", "endpoints.json")) as handle:
        endpoints = json.load(handle)
    for partition in endpoints["partitions"]:
        if partition["partition"] == "aws":
            partition["services"]["s3"]["endpoints"]["us-west-2"] = {
                "hostname": pod.s3.url.split("://", 1)[1],
                "protocols": ["http"],
                "signatureVersions": ["s3v4"],
            }
    folder = os.path.join(pod.folder, "botocore-data")
    os.makedirs(folder)
    with open(os.path.join(folder, "endpoints.json"), "w") as handle:
        json.dump(endpoints, handle)
    pod.env["AWS_DATA_PATH"] = folder


def botocore_reads_endpoint_variables():
    """True if this botocore takes AWS_ENDPOINT_URL_S3 from the environment (1.31 on)."""
    try:
        from botocore.configprovider import BOTOCORE_DEFAUT_SESSION_VARIABLES as variables
    except ImportError:
        return False
    return "ignore_configured_endpoint_urls" in variables


def botocore_has_web_identity():
    """True if this botocore's own chain can use the pod's token (1.12.254 on)."""
    import botocore.credentials

    return hasattr(botocore.credentials, "AssumeRoleWithWebIdentityProvider")


def play_eks():
    """Run main() as a pod's driver against loopback STS and S3; check and print its figures."""
    from loopback import LoopbackPod

    with LoopbackPod() as pod:
        if not botocore_reads_endpoint_variables():
            loopback_s3_endpoints(pod)
        code = pod.run(__file__)
        result = pod.result()
        calls = pod.assume_calls()
        leaks = pod.leaks()
        issued = pod.issued_keys()

    problems = []
    without = result.get("without_install") or {}
    tasks = result.get("tasks", [])
    good = [task for task in tasks if task["ok"] and task["method"] == "irsa-session"]
    processes = {task["pid"] for task in tasks}
    workers = len(processes)
    if result.get("driver_pid"):
        processes.add(result["driver_pid"])

    print("without install(): %s" % (without.get("error") or "worked"))
    print("tasks ok:    %d of %d with install(), in %d worker processes" % (len(good), TASKS, workers))
    print("STS calls:   %d AssumeRoleWithWebIdentity: %d processes (driver, task workers) = %d expected"
          % (len(calls), len(processes), len(processes)))

    if without and not botocore_has_web_identity() and "NoCredentialsError" not in str(without.get("error")):
        problems.append("without install() the script should find no credentials here: %s" % without)
    if len(good) != TASKS:
        bad = [task for task in tasks if task not in good]
        problems.append("%d of %d tasks succeeded with IRSA credentials: %s" % (len(good), TASKS, bad[:3]))
    if any(task.get("access_key") not in issued for task in good):
        problems.append("a task used credentials that STS did not issue")
    if tasks and len(calls) != len(processes):
        problems.append("%d STS calls, expected %d (one per process)" % (len(calls), len(processes)))
    pod.check_pickles(leaks, problems)
    return pod.verdict(problems, code)


if __name__ == "__main__":
    if sys.argv[1:2] == ["--driver"]:
        main(sys.argv[2])
    else:
        sys.exit(play_eks())
