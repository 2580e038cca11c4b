"""The test matrix: ``./dev test`` runs TEST_ROWS (the tests-*, bench-quick and
examples-* sessions), ``./dev demo`` the demo.

Each row gets its own venv (made with the row's Python ``-m venv``: virtualenv
can no longer seed 3.7 venvs).  moto cannot share a venv with botocore 1.8.50,
so every row runs moto's server from one shared modern venv, ``.nox/_moto``,
named to the tests by ``IRSA_TEST_MOTO_SERVER``.  The stand-ins the tests,
examples, benchmarks and tools import (package ``irsa_testing``, folder
``testing/``) are installed beside the package in every session.
"""

import glob
import os
import re
import shutil
import subprocess
import sys

import nox

ROOT = os.path.dirname(os.path.abspath(__file__))
TESTING = os.path.join(ROOT, "testing")
LEGACY = ["boto3==1.4.8", "botocore==1.8.50"]
MIDDLE = ["boto3==1.26.76", "botocore==1.29.76"]
# Issue 11: the data stack. boto3 goes in with aiobotocore so pip picks a botocore
# that aiobotocore accepts (it pins a narrow range).
DATA = [
    "aiobotocore[boto3]", "s3fs", "fsspec", "boto3", "pandas", "pyarrow", "ray[data,train]",
    "dask[dataframe]",
]
DATA_TESTS = ["tests/test_aio.py", "tests/test_arrow.py", "tests/test_docs.py"]
# Issue 26: the docs site (strict build) and its snippets' runner; deltalake for serve's page.
DOCS = ["sphinx", "myst-parser", "furo", "sphinxcontrib-mermaid", "sybil", "deltalake"]
# Issue 24: the native readers, which reach the library's credentials through serve(),
# in one row of their own.  duckdb loads its httpfs and aws extensions from PyPI's
# wheels (there is no network to fetch them from), which exist for duckdb 1.x only,
# each pinned to its duckdb.  s3torchconnectorclient is the CRT client of
# s3torchconnector without PyTorch (6 GB with CUDA).  The AWS CLI is PyPI's, v1.
DUCKDB = "1.5.5"
READERS = [
    "deltalake", "polars", "daft", "pylance", "s3torchconnectorclient", "awscli", "boto3",
    "pyarrow", "duckdb==" + DUCKDB, "duckdb-extension-httpfs==" + DUCKDB,
    "duckdb-extension-aws==" + DUCKDB,
]
READERS_TESTS = ["tests/test_readers.py"]
MACHINE_SETTINGS = {
    "IRSA_SESSION_CACHE_DIR": "/nonexistent/irsa-session-cache",
    "HTTP_PROXY": "http://127.0.0.1:9",
    "https_proxy": "http://127.0.0.1:9",
}
TEST_ROWS = [
    "tests-legacy-3.7",
    "tests-legacy-3.8",
    "tests-middle",
    "tests-newest-3.11",
    "tests-newest-3.13",
    "tests-vendored",
    "tests-data",
    "tests-readers",
    "bench-quick",
    "examples-ray-legacy",
    "examples-ray-current",
    "examples-notebook",
    "examples-awscli",
]

nox.options.sessions = TEST_ROWS
nox.options.reuse_existing_virtualenvs = True
nox.options.error_on_missing_interpreters = True
nox.options.download_python = "never"
os.environ.setdefault("PIP_DISABLE_PIP_VERSION_CHECK", "1")


def _pyenv_root():
    """Return pyenv's root: `pyenv root`, else $PYENV_ROOT, else ~/.pyenv."""
    try:
        out = subprocess.run(
            ["pyenv", "root"], stdout=subprocess.PIPE, stderr=subprocess.DEVNULL,
            universal_newlines=True, check=True,
        ).stdout.strip()
        if out:
            return out
    except (OSError, subprocess.CalledProcessError):
        pass
    return os.environ.get("PYENV_ROOT") or os.path.expanduser("~/.pyenv")


def _put_pyenv_pythons_on_path():
    """Prepend every pyenv CPython's bin dir to PATH, newest first, so python3.X resolves."""
    found = []
    for bin_dir in glob.glob(os.path.join(_pyenv_root(), "versions", "*", "bin")):
        match = re.match(r"^(\d+)\.(\d+)\.(\d+)$", os.path.basename(os.path.dirname(bin_dir)))
        if match and os.path.exists(os.path.join(bin_dir, "python%s.%s" % match.groups()[:2])):
            found.append((tuple(int(part) for part in match.groups()), bin_dir))
    dirs = [bin_dir for _, bin_dir in sorted(found, reverse=True)]
    os.environ["PATH"] = os.pathsep.join(dirs + [os.environ.get("PATH", "")])


_put_pyenv_pythons_on_path()


# -- shared moto server venv -------------------------------------------------

_MOTO_VENV = os.path.join(ROOT, ".nox", "_moto")
_moto_ready = []


def _moto_server(session):
    """Return the shared venv's moto_server, building the venv once if needed."""
    executable = os.path.join(_MOTO_VENV, "bin", "moto_server")
    python = os.path.join(_MOTO_VENV, "bin", "python")
    if _moto_ready:
        return executable

    def works():
        if not os.path.exists(executable):
            return False
        check = subprocess.run(
            [python, "-c", "import moto.server, flask"],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
        )
        return check.returncode == 0

    if not works():
        session.log("Building the shared moto server venv in %s" % _MOTO_VENV)
        shutil.rmtree(_MOTO_VENV, ignore_errors=True)
        session.run(sys.executable, "-m", "venv", _MOTO_VENV, external=True)
        session.run(python, "-m", "pip", "install", "-q", "moto[server]", external=True)
        if not works():
            session.error("moto server venv in %s does not work" % _MOTO_VENV)
    _moto_ready.append(True)
    return executable


# -- helpers -----------------------------------------------------------------


def _install(session, *deps):
    """Install deps, then the package itself and the test stand-ins (neither editable)."""
    session.install(*deps)
    # setuptools keeps build/lib between builds; a module deleted from the tree
    # would live on there and be installed again, so start from nothing.
    shutil.rmtree(os.path.join(ROOT, "build"), ignore_errors=True)
    session.install(".")
    _install_testing(session)


def _install_testing(session, python=None):
    """Install testing/ (irsa_testing: no dependencies) into the session, or into ``python``."""
    shutil.rmtree(os.path.join(TESTING, "build"), ignore_errors=True)  # as in _install
    if python is None:
        session.install(TESTING)
    else:
        session.run(python, "-m", "pip", "install", "-q", TESTING, external=True)


def _check_version(session, module, expected=None):
    """Log `module`'s version; fail the row unless it is `expected` (when given)."""
    out = session.run(
        "python", "-c", "import %s; print(%s.__version__)" % (module, module), silent=True
    )
    version = out.strip().splitlines()[-1]
    session.log("%s %s" % (module, version))
    if expected and version != expected:
        session.error("%s is %s, this row needs %s" % (module, version, expected))


def _pytest(session, **extra_env):
    """Run the `pytest` executable at the repo root with the row's env."""
    env = {
        "IRSA_TEST_MOTO_SERVER": _moto_server(session),
        "IRSA_TEST_ROW": session.name,
    }
    # A machine's own settings must not reach a test: conftest.py clears these, and
    # tests/test_servers.py checks that it did (a proxy on the discard port would
    # swallow the token; a cache directory would change every STS count).
    env.update(MACHINE_SETTINGS)
    env.update(extra_env)
    # A path in posargs (e.g. `-- tests/test_servers.py`) replaces the default "tests".
    targets = ["tests"]
    for arg in session.posargs:
        if not arg.startswith("-") and os.path.exists(os.path.join(ROOT, arg.split("::")[0])):
            targets = []
    session.chdir(ROOT)
    session.run("pytest", *targets, "-p", "no:cacheprovider", "-ra", *session.posargs, env=env)


# -- test rows ---------------------------------------------------------------


def _legacy(session):
    """boto3 1.4.8 with cachetools, package installed from the tree."""
    _install(session, *LEGACY, "cachetools", "pytest", "hypothesis")
    _check_version(session, "boto3", "1.4.8")
    _check_version(session, "botocore", "1.8.50")
    _pytest(session)


@nox.session(name="tests-legacy-3.7", python="3.7", venv_backend="venv")
def tests_legacy_37(session):
    """Python 3.7, boto3 1.4.8."""
    _legacy(session)


@nox.session(name="tests-legacy-3.8", python="3.8", venv_backend="venv")
def tests_legacy_38(session):
    """Python 3.8, boto3 1.4.8."""
    _legacy(session)


@nox.session(name="tests-middle", python="3.10", venv_backend="venv")
def tests_middle(session):
    """Python 3.10, boto3 1.26.76."""
    _install(session, *MIDDLE, "cachetools", "pytest", "hypothesis")
    _check_version(session, "boto3", "1.26.76")
    _pytest(session)


def _newest(session, *extra):
    """Newest boto3."""
    _install(session, "-U", "boto3", "cachetools", "pytest", "hypothesis", *extra)
    _check_version(session, "boto3")
    _pytest(session)


@nox.session(name="tests-newest-3.11", python="3.11", venv_backend="venv")
def tests_newest_311(session):
    """Python 3.11, newest boto3 and the OpenTelemetry SDK (tests/test_otel.py); and the
    public API's types checked by mypy."""
    _newest(session, "mypy", "opentelemetry-sdk")
    session.run("python", "tools/typecheck.py")


@nox.session(name="tests-newest-3.13", python="3.13", venv_backend="venv")
def tests_newest_313(session):
    """Python 3.13, newest boto3."""
    _newest(session)


@nox.session(name="tests-vendored", python="3.7", venv_backend="venv")
def tests_vendored(session):
    """Python 3.7, boto3 1.4.8, no cachetools, package copied in as a vendored folder."""
    session.install(*LEGACY, "pytest", "hypothesis")
    _install_testing(session)  # brings no irsa_session and no cachetools: checked next
    # -I: neither the cwd (the repo root) nor PYTHONPATH may make these importable.
    session.run("python", "-I", "-c", "import cachetools", success_codes=[1], silent=True)
    session.run("python", "-I", "-c", "import irsa_session", success_codes=[1], silent=True)
    _check_version(session, "boto3", "1.4.8")
    vendor = os.path.join(os.path.abspath(session.create_tmp()), "vendor")
    shutil.rmtree(vendor, ignore_errors=True)
    shutil.copytree(
        os.path.join(ROOT, "irsa_session"),
        os.path.join(vendor, "irsa_session"),
        ignore=shutil.ignore_patterns("__pycache__", "*.pyc"),
    )
    _pytest(session, PYTHONPATH=vendor, IRSA_TEST_VENDORED=vendor)


@nox.session(name="tests-data", python="3.11", venv_backend="venv")
def tests_data(session):
    """Python 3.11, aiobotocore, s3fs, pandas and pyarrow with the boto3 they accept."""
    _install(session, "-U", *DATA, *DOCS, "cachetools", "pytest")
    for module in ("boto3", "botocore", "aiobotocore", "s3fs", "pandas", "pyarrow", "ray", "dask"):
        _check_version(session, module)
    named = [arg for arg in session.posargs if not arg.startswith("-")]
    if not any(os.path.exists(os.path.join(ROOT, arg.split("::")[0])) for arg in named):
        session.posargs[:] = DATA_TESTS + list(session.posargs)  # not all of tests/
    _pytest(session, RAY_USAGE_STATS_ENABLED="0")
    _build_docs(session)  # the docs site shares this row's venv: its snippets ran above
    # The demo of the README's first newcomer command, with moto's own venv.
    session.run(os.path.join(_MOTO_VENV, "bin", "python"), "examples/demo.py",
                env={"PYTHONPATH": ROOT}, external=True)
    # The pyarrow benchmark shares this row's venv; it exits 1 on a missed target.
    session.run(
        "python", "benchmarks/arrow.py", "--quick",
        env={"IRSA_TEST_MOTO_SERVER": _moto_server(session)},
    )


@nox.session(name="tests-readers", python="3.11", venv_backend="venv")
def tests_readers(session):
    """Python 3.11, the native readers (deltalake, polars, daft, lance, the CRT client,
    duckdb, the AWS CLI, pyarrow's own S3FileSystem) on one serve() endpoint."""
    _install(session, "-U", *READERS, "pytest")
    for module in ("deltalake", "polars", "daft", "lance", "duckdb", "awscli", "boto3", "pyarrow"):
        _check_version(session, module)
    named = [arg for arg in session.posargs if not arg.startswith("-")]
    if not any(os.path.exists(os.path.join(ROOT, arg.split("::")[0])) for arg in named):
        session.posargs[:] = READERS_TESTS + list(session.posargs)  # not all of tests/
    _pytest(session)


def _build_docs(session):
    """The docs site, strict: any warning (a broken link, a missing page, a reference to
    a name that does not exist) fails the build."""
    out = os.path.join(ROOT, "docs", "_build", "html")
    shutil.rmtree(out, ignore_errors=True)
    session.run("sphinx-build", "-W", "--keep-going", "-n", "-q", "-b", "html",
                os.path.join(ROOT, "docs"), out)
    session.log("docs built in %s" % out)


@nox.session(python="3.11", venv_backend="venv")
def docs(session):
    """The docs site (./dev docs), built in strict mode into docs/_build/html."""
    _install(session, *DOCS)
    _build_docs(session)


# -- figures -----------------------------------------------------------------


@nox.session(name="reliability-newest", python="3.11", venv_backend="venv")
def reliability_newest(session):
    """Print the reliability figures on the newest boto3."""
    _install(session, "-U", "boto3", "cachetools")
    session.chdir(ROOT)
    session.run("python", "tools/reliability.py")


@nox.session(name="reliability-legacy", python="3.7", venv_backend="venv")
def reliability_legacy(session):
    """Print the reliability figures on boto3 1.4.8 / botocore 1.8.50."""
    _install(session, *LEGACY, "cachetools")
    _check_version(session, "botocore", "1.8.50")
    session.chdir(ROOT)
    session.run("python", "tools/reliability.py")


# -- benchmarks ----------------------------------------------------------------

_BENCH_LEGACY = os.path.join(ROOT, ".nox", "_bench-legacy")


def _bench_legacy_python(session):
    """A Python 3.7 venv with boto3 1.4.8, this package and the stand-ins (W3 runs a
    FakeSTS there), for the legacy columns."""
    python = os.path.join(_BENCH_LEGACY, "bin", "python")
    if not os.path.exists(python):
        session.run("python3.7", "-m", "venv", _BENCH_LEGACY, external=True)
    session.run(python, "-m", "pip", "install", "-q", *LEGACY, external=True)
    shutil.rmtree(os.path.join(ROOT, "build"), ignore_errors=True)
    session.run(python, "-m", "pip", "install", "-q", ".", external=True)
    _install_testing(session, python)
    return python


def _bench(session, *args):
    _install(session, "-U", "boto3", "cachetools")
    legacy = _bench_legacy_python(session)
    session.chdir(ROOT)
    session.run("python", "benchmarks/run.py", "--legacy-python", legacy, *args)


@nox.session(python="3.11", venv_backend="venv")
def bench(session):
    """The benchmark table of README "Performance" (full mode, several minutes)."""
    _bench(session)


@nox.session(name="bench-quick", python="3.11", venv_backend="venv")
def bench_quick(session):
    """The same benchmark with fewer repeats and iterations, as CI runs it."""
    _bench(session, "--quick")


# -- demo --------------------------------------------------------------------


@nox.session(python="3.11", venv_backend="venv")
def demo(session):
    """Run examples/demo.py against a local moto server."""
    _install(session, "-U", "boto3", "moto[server]")
    session.chdir(ROOT)
    session.run("python", "examples/demo.py")


# -- examples (issue 6) --
# Ray, Jupyter and the AWS CLI end to end: examples/ray_legacy.py,
# ray_seed_script.py, ray_current.py, notebook.ipynb and aws_cli.py, run by
# tests/test_examples.py (which the ordinary rows skip: they have none of these).

# Ray 2.3.0 as in rayproject/ray:2.3.0-py38, with dependencies of its time (it also
# runs with the newest protobuf and grpcio that still support Python 3.8).
RAY_LEGACY = ["ray==2.3.0", "protobuf==3.20.3", "grpcio==1.51.3", "numpy<1.24"]
# Issue 11: pyarrow in that environment. Ray 2.3 takes pyarrow >= 6.0.1; this is the
# oldest it takes, with the pandas of its time.
RAY_LEGACY_DATA = ["pyarrow==6.0.1", "pandas<2"]


def _examples_pytest(session, selector, tests="tests/test_examples.py", *flags):
    """Run the tests of ``tests`` that match ``selector`` (pytest -k; None: all)."""
    env = {
        "IRSA_TEST_MOTO_SERVER": _moto_server(session),
        "IRSA_TEST_ROW": session.name,
        "RAY_USAGE_STATS_ENABLED": "0",
    }
    session.chdir(ROOT)
    chosen = ["-k", selector] if selector else []
    session.run(
        "pytest", tests, *chosen, "-p", "no:cacheprovider", *(flags or ("-raP",)),
        *session.posargs, env=env,
    )


@nox.session(name="examples-ray-legacy", python="3.8", venv_backend="venv")
def examples_ray_legacy(session):
    """Ray 2.3.0 on Python 3.8 with boto3 1.4.8: ray_legacy.py and ray_seed_script.py,
    then arrow_filesystem() with Ray Data on that Ray's pyarrow (tests/test_arrow.py)."""
    _install(session, *LEGACY, *RAY_LEGACY, *RAY_LEGACY_DATA, "pytest")
    _check_version(session, "boto3", "1.4.8")
    _check_version(session, "botocore", "1.8.50")
    _check_version(session, "ray", "2.3.0")
    _check_version(session, "pyarrow", "6.0.1")
    _examples_pytest(session, "ray_legacy or ray_seed_script")
    _examples_pytest(session, None, "tests/test_arrow.py", "-ra")


@nox.session(name="examples-ray-current", python="3.11", venv_backend="venv")
def examples_ray_current(session):
    """Newest Ray and boto3 on Python 3.11: ray_current.py (worker_process_setup_hook)."""
    _install(session, "-U", "boto3", "ray", "pytest")
    _check_version(session, "boto3")
    _check_version(session, "ray")
    _examples_pytest(session, "ray_current")


@nox.session(name="examples-notebook", python="3.11", venv_backend="venv")
def examples_notebook(session):
    """Newest boto3 on Python 3.11: notebook.ipynb executed headless by nbclient."""
    _install(session, "-U", "boto3", "nbclient", "nbformat", "ipykernel", "pytest")
    _check_version(session, "boto3")
    _check_version(session, "nbclient")
    _examples_pytest(session, "notebook")


@nox.session(name="examples-awscli", python="3.11", venv_backend="venv")
def examples_awscli(session):
    """PyPI's awscli on Python 3.11 with a credential_process profile: aws_cli.py."""
    _install(session, "-U", "awscli", "boto3", "pytest")
    _check_version(session, "awscli")
    _check_version(session, "botocore")
    _examples_pytest(session, "aws_cli")
