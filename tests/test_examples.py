"""The examples end to end: Ray (examples/ray_*.py), a notebook (examples/notebook.ipynb)
and the AWS CLI (examples/aws_cli.py).

Each Ray example plays EKS on 127.0.0.1 itself and checks its own figures; here
it runs as a subprocess and its exit code and printed figures are asserted on.
The notebook is executed headless by nbclient against loopback STS and S3.

The ordinary rows have none of ray, nbclient and awscli and skip these tests; the
examples-* rows of the noxfile install them, and there a missing one fails.
"""

import importlib.util
import os
import re
import subprocess
import sys
import time

import boto3
import pytest

from irsa_testing import ROLE_ARN

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
EXAMPLES = os.path.join(ROOT, "examples")
ROW = os.environ.get("IRSA_TEST_ROW", "")
TIMEOUT = 600


def needs(*modules):
    """Skip unless ``modules`` import; in an examples-* row they must (the row installs them)."""
    missing = [name for name in modules if importlib.util.find_spec(name) is None]
    return pytest.mark.skipif(
        bool(missing) and not ROW.startswith("examples-"),
        reason="%s not installed in this row (the examples-* rows of the noxfile have it)"
        % " and ".join(missing),
    )


def assert_installed(*modules):
    for name in modules:
        assert importlib.util.find_spec(name) is not None, (
            "row %s must install %s for this test" % (ROW, name)
        )


def run_example(name):
    """Run examples/<name> with this Python; return its output, failing on a non-zero exit."""
    started = time.monotonic()
    try:
        done = subprocess.run(
            [sys.executable, os.path.join(EXAMPLES, name)],
            cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, timeout=TIMEOUT,
        )
    except subprocess.TimeoutExpired as err:
        pytest.fail("%s ran over %d s:\n%s" % (name, TIMEOUT, (err.output or b"").decode("utf-8", "replace")))
    output = done.stdout.decode("utf-8", "replace")
    print(output)
    print("(%s: %.1f s in all)" % (name, time.monotonic() - started))
    assert done.returncode == 0, output
    assert "all checks passed" in output, output
    return output


def figure(pattern, output):
    match = re.search(pattern, output)
    assert match, "no %r in:\n%s" % (pattern, output)
    return [int(group) if group.isdigit() else group for group in match.groups()]


def assert_ray_figures(output, tasks):
    """The figures every Ray example prints: tasks, STS calls, actor refresh, pickles."""
    good, total, workers = figure(r"tasks ok:\s+(\d+) of (\d+)\D.*in (\d+) worker processes", output)
    assert good == total == tasks
    calls, processes, refreshes, expected = figure(
        r"STS calls:\s+(\d+) AssumeRoleWithWebIdentity: (\d+) processes .*\+ (\d+) refresh.* = (\d+) expected",
        output,
    )
    # One per process (driver, each worker, the actor) plus the actor's refreshes:
    # never one per task.
    assert calls == expected == processes + refreshes
    assert processes >= workers + 1 and refreshes >= 1
    assert calls < tasks / 2
    reads, failed, first, second = figure(
        r"actor:\s+(\d+) reads, (\d+) failed; access key (ASIA\w+) -> (ASIA\w+)", output
    )
    assert reads > 0 and failed == 0 and first != second
    blobs, found = figure(r"pickles:\s+(\d+) blobs, .* (\d+) found", output)
    assert blobs >= 4 and found == 0


@needs("ray")
def test_ray_legacy():
    assert_installed("ray")
    output = run_example("ray_legacy.py")
    assert_ray_figures(output, tasks=50)


@needs("ray")
def test_ray_seed_script():
    assert_installed("ray")
    output = run_example("ray_seed_script.py")
    import botocore.credentials

    if not hasattr(botocore.credentials, "AssumeRoleWithWebIdentityProvider"):
        # boto3 1.4.8: without irsa_session.install() the script finds no credentials.
        assert "without install(): NoCredentialsError" in output
    good, total, _ = figure(r"tasks ok:\s+(\d+) of (\d+) with install\(\), in (\d+) worker", output)
    assert good == total == 20
    calls, processes = figure(r"STS calls:\s+(\d+) AssumeRoleWithWebIdentity: (\d+) processes", output)
    assert calls == processes < 20
    assert figure(r"pickles:\s+\d+ blobs, .* (\d+) found", output) == [0]


@needs("ray")
def test_ray_current():
    assert_installed("ray")
    output = run_example("ray_current.py")
    assert_ray_figures(output, tasks=50)
    good, total = figure(r"(\d+) of (\d+) unchanged boto3.client\('s3'\) with the setup hook", output)
    assert good == total == 20


@needs("awscli")
def test_aws_cli():
    assert_installed("awscli")
    output = run_example("aws_cli.py")
    assert figure(r"aws s3 cp:\s+(\d+) of (\d+) ok \(no cache\)", output) == [3, 3]
    assert figure(r"aws s3 cp:\s+(\d+) of (\d+) ok \(cache\)", output) == [3, 3]
    # One exchange per aws run (configure list, get-caller-identity, 3 copies)
    # without the node-wide cache, one in all with it: each by irsa-session.
    assert figure(r"STS calls:\s+(\d+) AssumeRoleWithWebIdentity: (\d+) for (\d+) aws runs without "
                  r"the cache, (\d+) for (\d+) runs with it", output) == [6, 5, 5, 1, 3]
    assert "aws-cli" not in figure(r"callers:\s+(.*)", output)[0]
    assert figure(r"leaks:\s+(\d+)", output) == [0]


# -- the notebook --------------------------------------------------------------

NOTEBOOK_BUCKET = "team-a-datasets"
IRIS = "sepal_length,sepal_width,petal_length,petal_width,species\n" + "".join(
    "%.1f,%.1f,%.1f,%.1f,%s\n" % (5.0 + i % 7 / 10.0, 3.0, petal + i % 3 / 10.0, 0.2, species)
    for species, petal in (("setosa", 1.4), ("versicolor", 4.2), ("virginica", 5.5))
    for i in range(50)
)


@pytest.fixture
def notebook_env(fake_env, moto_server, monkeypatch, tmp_path):
    """Loopback STS and S3 for the kernel, the team's bucket on S3; returns the fake STS."""
    monkeypatch.setenv("AWS_ENDPOINT_URL_S3", moto_server.url)
    # Anything not for 127.0.0.1 goes to a closed loopback port.
    for name in ("HTTP_PROXY", "HTTPS_PROXY"):
        monkeypatch.setenv(name, "http://127.0.0.1:9")
    for name in ("NO_PROXY", "no_proxy"):
        monkeypatch.setenv(name, "127.0.0.1,localhost")
    # Jupyter's and IPython's files in the test's folder, not the home directory.
    monkeypatch.setenv("JUPYTER_RUNTIME_DIR", str(tmp_path / "jupyter-runtime"))
    monkeypatch.setenv("IPYTHONDIR", str(tmp_path / "ipython"))
    moto_server.reset()
    s3 = boto3.client(
        "s3", endpoint_url=moto_server.url, region_name="us-west-2",
        aws_access_key_id="testing", aws_secret_access_key="testing",
    )
    s3.create_bucket(
        Bucket=NOTEBOOK_BUCKET, CreateBucketConfiguration={"LocationConstraint": "us-west-2"}
    )
    s3.put_object(Bucket=NOTEBOOK_BUCKET, Key="iris/iris.csv", Body=IRIS.encode())
    s3.put_object(Bucket=NOTEBOOK_BUCKET, Key="iris/README.md", Body=b"# Iris\nFisher, 1936\n")
    return fake_env


def cell_text(cell):
    """Everything a cell showed: streams, results, errors."""
    parts = []
    for output in cell.get("outputs", []):
        if output.get("output_type") == "stream":
            parts.append(output.get("text", ""))
        elif output.get("output_type") == "error":
            parts.append("%s: %s" % (output.get("ename"), output.get("evalue")))
        else:
            parts.append(output.get("data", {}).get("text/plain", ""))
    return "".join(parts)


@needs("nbclient", "nbformat", "ipykernel")
def test_notebook(notebook_env, tmp_path, irsa_env):
    assert_installed("nbclient", "nbformat", "ipykernel")
    import nbclient
    import nbformat

    with open(os.path.join(EXAMPLES, "notebook.ipynb")) as handle:
        notebook = nbformat.read(handle, as_version=4)
    assert not any(cell.get("outputs") for cell in notebook.cells), "commit the notebook without outputs"
    client = nbclient.NotebookClient(
        notebook, timeout=120, kernel_name="python3",
        resources={"metadata": {"path": str(tmp_path)}},
    )
    client.execute()
    shown = [cell_text(cell) for cell in notebook.cells if cell.cell_type == "code"]
    everything = "\n".join(shown)
    print(everything)

    assert "IrsaSession(role_arn=%r" % ROLE_ARN in shown[0]
    assert "role:    arn:aws:sts::111122223333:assumed-role/data-reader/" in shown[1]
    assert "iris/README.md" in shown[2] and "iris/iris.csv" in shown[2]
    assert "150 rows; columns: sepal_length" in shown[3]
    assert "'setosa': 1.5" in shown[3] and "'virginica': 5.6" in shown[3]
    issued = notebook_env.issued
    assert "access key id:  %s" % issued[-1]["access_key"] in shown[4]
    assert "refreshes from:" in shown[4]

    # One exchange for the whole notebook; nothing secret in what it shows or saves.
    exchanges = [call for call in notebook_env.calls if call["action"] == "AssumeRoleWithWebIdentity"]
    assert len(exchanges) == 1
    with open(irsa_env) as handle:
        token = handle.read().strip()
    saved = nbformat.writes(notebook)
    for creds in issued:
        assert creds["secret_key"] not in saved and creds["session_token"] not in saved
    assert token not in saved
