"""Current Ray and boto3 with IRSA credentials: a captured session, and unchanged boto3 code.

Two ways a Ray user gets IRSA credentials from irsa-session, in one driver:

- ``from irsa_session import session`` at the top of the driver; tasks and an
  actor capture it, Ray pickles it (settings only, no secrets) and each worker
  process makes one STS call, then refreshes when due;
- ``ray.init(runtime_env={"worker_process_setup_hook": "irsa_session.install"})``:
  every worker runs ``irsa_session.install()`` as it starts, so unchanged code
  (``boto3.client('s3')``, the script of the Ray docs' IRSA pitfall) gets the
  same refreshing credentials, shared with ``session``: no extra STS call.

    python examples/ray_current.py    # needs ray, boto3, irsa-session, and moto's server

Run like this, it plays EKS on 127.0.0.1 with the stand-in of loopback.py (30-second
credentials, so the actor sees a refresh within about 25 s), runs the driver as a
pod would, and checks: every task succeeded, STS calls (one per process, plus
refreshes), and no key, secret or token in the bytes Ray pickled.  It prints its
figures and exits non-zero on any failure.
"""

import json
import os
import sys
import tempfile
import time

import ray
from irsa_session import session

BUCKET = "ray-irsa-current"
TASKS = 50
SEED_TASKS = 20


def content(key):
    """What the driver uploads under ``key`` (so a task can check what it read)."""
    return ("%s\n" % key).encode() * 200


@ray.remote
def download(key):
    """One task: download one object through the session captured from this module."""
    s3 = session.client("s3")
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


def boto3_example_1(bucket_name, key, filename):
    """``boto3_example_1.py`` of the pitfall, as it is."""
    import boto3

    s3 = boto3.client('s3')
    s3.download_file(bucket_name, key, filename)


@ray.remote
def seed_task(key):
    """The pitfall's script in a worker set up by the hook; reports whose credentials it used."""
    with tempfile.TemporaryDirectory() as folder:
        filename = os.path.join(folder, "object")
        boto3_example_1(BUCKET, key, filename)
        with open(filename, "rb") as handle:
            ok = handle.read() == content(key)
    import boto3

    credentials = boto3.DEFAULT_SESSION.get_credentials() if boto3.DEFAULT_SESSION else None
    return {
        "pid": os.getpid(),
        "ok": ok,
        "method": getattr(credentials, "method", None),
        "shared_with_session": credentials is session.get_credentials(),
        "access_key": getattr(credentials, "access_key", None),
    }


@ray.remote
class Reader(object):
    """A long-lived worker that keeps reading while its credentials are refreshed."""

    def __init__(self):
        self.s3 = session.client("s3")

    def read_across_refresh(self, key, limit):
        from ray_legacy import read_across_refresh  # the same loop as on Ray 2.3

        return read_across_refresh(self.s3, BUCKET, key, limit)


def gather(refs, timeout=300):
    """ray.get each ref: (results, failures)."""
    results, failures = [], []
    for ref in refs:
        try:
            results.append(ray.get(ref, timeout=timeout))
        except Exception as err:
            failures.append("%s: %s" % (type(err).__name__, err))
    return results, failures


def main(out):
    """The driver: upload the objects, run the tasks and the actor, save what Ray pickled."""
    started = time.time()
    s3 = session.client("s3")
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
        runtime_env={"worker_process_setup_hook": "irsa_session.install"},
        _node_ip_address="127.0.0.1",
        _temp_dir=os.path.join(out, "ray"),
    )
    try:
        reader = Reader.remote()
        across = reader.read_across_refresh.remote(keys[0], limit=3 * life + 30)
        tasks, failures = gather([download.remote(key) for key in keys])
        seeds, seed_failures = gather([seed_task.remote(key) for key in keys[:SEED_TASKS]])
        actor = ray.get(across, timeout=3 * life + 120)
        pickles = {
            "session": ray.cloudpickle.dumps(session),
            "download (function)": ray.cloudpickle.dumps(download._function),
            "download (as exported)": download._pickled_function or b"",
            "seed_task (as exported)": seed_task._pickled_function or b"",
        }
        from ray_legacy import ray_function_table

        for key, blob in ray_function_table().items():
            pickles["function table " + key] = blob
    finally:
        ray.shutdown()

    from ray_legacy import save_pickles

    save_pickles(out, pickles)
    result = {
        "tasks": tasks,
        "task_failures": failures,
        "seed_tasks": seeds,
        "seed_failures": seed_failures,
        "actor": actor,
        "driver_pid": os.getpid(),
        "seconds": time.time() - started,
    }
    with open(os.path.join(out, "result.json"), "w") as handle:
        json.dump(result, handle)


# -- a stand-in for EKS on 127.0.0.1 (a real pod has none of this) --------------


def play_eks():
    """Run main() as a pod's driver against loopback STS and S3; check and print its figures."""
    from loopback import LoopbackPod

    with LoopbackPod(credential_life=30) as pod:
        code = pod.run(__file__)
        result = pod.result()
        calls = pod.assume_calls()
        leaks = pod.leaks()
        issued = pod.issued_keys()

    from ray_legacy import check_calls_and_actor

    problems = []
    tasks = result.get("tasks", [])
    good = [task for task in tasks if task["ok"]]
    seeds = result.get("seed_tasks", [])
    good_seeds = [
        task for task in seeds
        if task["ok"] and task["method"] == "irsa-session" and task["shared_with_session"]
    ]
    processes = {task["pid"] for task in tasks + seeds}
    print("tasks ok:    %d of %d with the captured session; %d of %d unchanged boto3.client('s3') "
          "with the setup hook's credentials; in %d worker processes"
          % (len(good), TASKS, len(good_seeds), SEED_TASKS, len(processes)))
    if len(good) != TASKS:
        problems.append("%d of %d tasks succeeded: %s"
                        % (len(good), TASKS, result.get("task_failures", [])[:3]))
    if len(good_seeds) != SEED_TASKS:
        bad = [task for task in seeds if task not in good_seeds]
        problems.append("%d of %d unchanged boto3 tasks used the hook's IRSA credentials: %s"
                        % (len(good_seeds), SEED_TASKS, (bad + result.get("seed_failures", []))[:3]))
    if any(task["access_key"] not in issued for task in tasks + seeds):
        problems.append("a task used credentials that STS did not issue")
    check_calls_and_actor(pod, result, processes, calls, issued, problems)
    pod.check_pickles(leaks, problems)
    return pod.verdict(problems, code)

if __name__ == "__main__":
    if sys.argv[1:2] == ["--driver"]:
        main(sys.argv[2])
    else:
        sys.exit(play_eks())
