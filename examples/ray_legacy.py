"""Ray 2.3 tasks and an actor reading S3 with IRSA credentials, on boto3 1.4.8.

The driver is what a Ray user on an old image (``rayproject/ray:2.3.0``, boto3
1.4.8 / botocore 1.8.50) writes: ``from irsa_session import session`` at the top,
tasks and an actor that use it.  Ray pickles the tasks with the ``session`` they
capture from this module; each worker process unpickles it as its own session
(settings only, no secrets), makes one STS call, and refreshes when due.

    python examples/ray_legacy.py     # needs ray, boto3, irsa-session, and moto's server

Run like this, the file also plays EKS on 127.0.0.1 (examples/loopback.py):
it writes a JWT-shaped token, starts a fake STS that issues 30-second
credentials (so the actor sees a refresh within about 25 s) and moto's server as
S3, runs the driver in a child process with the variables the pod identity
webhook sets, then checks what the driver reports: every task succeeded, STS
calls (about one per process, plus refreshes), and no key, secret or token in
the bytes Ray pickled.  It prints its figures and exits non-zero on any failure.
"""

import json
import os
import sys
import tempfile
import time

import ray
from irsa_session import session

BUCKET = "ray-irsa-example"
TASKS = 50
# boto3 1.4.8 does not read AWS_ENDPOINT_URL_S3 itself; in a real pod it is unset
# (None: the real S3).
S3_ENDPOINT = os.environ.get("AWS_ENDPOINT_URL_S3")


def content(key):
    """What the driver uploads under ``key`` (so a task can check what it read)."""
    return ("%s\n" % key).encode() * 200


@ray.remote
def download(key):
    """One task: download one object through the session captured from this module."""
    s3 = session.client("s3", endpoint_url=S3_ENDPOINT)
    with tempfile.TemporaryDirectory() as folder:
        path = os.path.join(folder, "object")
        s3.download_file(BUCKET, key, path)
        with open(path, "rb") as handle:
            body = handle.read()
    return {
        "pid": os.getpid(),
        "key": key,
        "ok": body == content(key),
        "access_key": session.get_credentials().access_key,
    }


def read_across_refresh(s3, bucket, key, limit, after=4):
    """Read ``key`` every 0.5 s until ``after`` reads past a new access key (or ``limit`` s)."""
    started = time.time()
    reads, failed, keys, changed_at, since_change = 0, [], [], None, 0
    while time.time() - started < limit and since_change < after:
        try:
            body = s3.get_object(Bucket=bucket, Key=key)["Body"].read()
            if body != content(key):
                raise ValueError("read %d bytes that are not %s" % (len(body), key))
            reads += 1
        except Exception as err:  # report every failure; the driver decides
            failed.append("%s: %s" % (type(err).__name__, err))
        access_key = session.get_credentials().access_key
        if not keys or keys[-1] != access_key:
            keys.append(access_key)
            if len(keys) > 1 and changed_at is None:
                changed_at = time.time() - started
        if len(keys) > 1:
            since_change += 1
        time.sleep(0.5)
    return {
        "pid": os.getpid(),
        "reads": reads,
        "failed": failed,
        "access_keys": keys,
        "changed_after": changed_at,
    }


@ray.remote
class Reader(object):
    """A long-lived worker that keeps reading while its credentials are refreshed."""

    def __init__(self):
        self.s3 = session.client("s3", endpoint_url=S3_ENDPOINT)

    def read_across_refresh(self, key, limit):
        return read_across_refresh(self.s3, BUCKET, key, limit)


def ray_function_table():
    """Every blob Ray exported to its function table (remote functions, actor classes)."""
    try:
        from ray.experimental import internal_kv

        keys = internal_kv._internal_kv_list(b"", namespace=b"fun")
        return {
            key.decode("utf-8", "replace"): internal_kv._internal_kv_get(key, namespace=b"fun") or b""
            for key in keys
        }
    except Exception as err:  # a private API: newer or older Rays may differ
        print("note: could not read Ray's function table (%s)" % err)
        return {}


def save_pickles(out, pickles):
    """Write each blob to out/pickles/, for the stand-in below to search."""
    folder = os.path.join(out, "pickles")
    os.makedirs(folder)
    for number, (name, blob) in enumerate(sorted(pickles.items())):
        safe = "".join(char if char.isalnum() else "-" for char in name.split(":")[0])
        with open(os.path.join(folder, "%02d-%s.bin" % (number, safe)), "wb") as handle:
            handle.write(blob)


def main(out):
    """The driver: upload the objects, run the tasks and the actor, save what Ray pickled."""
    started = time.time()
    s3 = session.client("s3", endpoint_url=S3_ENDPOINT)
    s3.create_bucket(
        Bucket=BUCKET, CreateBucketConfiguration={"LocationConstraint": session.region_name}
    )
    keys = ["part-%03d.txt" % number for number in range(TASKS)]
    for key in keys:
        s3.put_object(Bucket=BUCKET, Key=key, Body=content(key))
    life = float(os.environ.get("IRSA_EXAMPLE_CREDENTIAL_LIFE", "3600"))

    ray.init(
        num_cpus=2,
        include_dashboard=False,
        object_store_memory=200 * 1024 * 1024,
        _node_ip_address="127.0.0.1",
        _temp_dir=os.path.join(out, "ray"),
    )
    try:
        reader = Reader.remote()
        across = reader.read_across_refresh.remote(keys[0], limit=3 * life + 30)
        tasks, failures = [], []
        for ref in [download.remote(key) for key in keys]:
            try:
                tasks.append(ray.get(ref, timeout=300))
            except Exception as err:
                failures.append("%s: %s" % (type(err).__name__, err))
        actor = ray.get(across, timeout=3 * life + 120)
        pickles = {
            "session": ray.cloudpickle.dumps(session),
            "download (function)": ray.cloudpickle.dumps(download._function),
            "download (as exported)": download._pickled_function or b"",
        }
        for key, blob in ray_function_table().items():
            pickles["function table " + key] = blob
    finally:
        ray.shutdown()

    save_pickles(out, pickles)
    result = {
        "tasks": tasks,
        "task_failures": failures,
        "actor": actor,
        "driver_pid": os.getpid(),
        "pickles": sorted(pickles),
        "seconds": time.time() - started,
    }
    with open(os.path.join(out, "result.json"), "w") as handle:
        json.dump(result, handle)


def play_eks():
    """Run main() as a pod's driver against loopback STS and S3; check and print its figures."""
    from loopback import LoopbackPod

    with LoopbackPod(credential_life=30) as pod:
        code = pod.run(__file__)
        result = pod.result()
        calls = pod.assume_calls()
        leaks = pod.leaks()
        issued = pod.issued_keys()

    problems = []
    tasks = result.get("tasks", [])
    good = [task for task in tasks if task["ok"]]
    processes = {task["pid"] for task in tasks}
    print("tasks ok:    %d of %d, in %d worker processes" % (len(good), TASKS, len(processes)))
    if len(good) != TASKS:
        problems.append("%d of %d tasks succeeded: %s"
                        % (len(good), TASKS, result.get("task_failures", [])[:3]))
    if any(task["access_key"] not in issued for task in tasks):
        problems.append("a task used credentials that STS did not issue")
    check_calls_and_actor(pod, result, processes, calls, issued, problems)
    pod.check_pickles(leaks, problems)
    return pod.verdict(problems, code)


def check_calls_and_actor(pod, result, processes, calls, issued, problems):
    """Print and check the STS calls (one per process and per refresh, never one
    per task) and what the actor saw across its refresh; ray_current.py's too."""
    actor = result.get("actor") or {}
    keys_seen = actor.get("access_keys", [])
    processes = set(processes)
    processes.update(pid for pid in (actor.get("pid"), result.get("driver_pid")) if pid)
    refreshes = max(len(keys_seen) - 1, 0)
    expected = len(processes) + refreshes
    print("STS calls:   %d AssumeRoleWithWebIdentity: %d processes (driver, task workers, actor) "
          "+ %d refresh in the actor = %d expected" % (len(calls), len(processes), refreshes, expected))
    if actor:
        print("actor:       %d reads, %d failed; access key %s after %s"
              % (actor["reads"], len(actor["failed"]), " -> ".join(keys_seen),
                 "%.1f s" % actor["changed_after"] if actor["changed_after"] else "(never changed)"))
    if len(keys_seen) < 2 or not set(keys_seen) <= issued:
        problems.append("the actor saw no refresh by STS: %s" % keys_seen)
    if actor.get("failed") or (actor and not actor["reads"]):
        problems.append("the actor failed %s reads: %s" % (len(actor["failed"]), actor["failed"][:3]))
    if result.get("tasks") and len(calls) != expected:
        problems.append("%d STS calls, expected %d" % (len(calls), expected))


if __name__ == "__main__":
    if sys.argv[1:2] == ["--driver"]:
        main(sys.argv[2])
    else:
        sys.exit(play_eks())
