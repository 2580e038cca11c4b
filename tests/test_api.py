"""The public surface of API.md: names, signatures, errors, the default session,
the version, and Python 3.7 syntax throughout the package."""

import ast
import builtins
import glob
import inspect
import os
import re
import shutil
import socket
import subprocess
import sys
import tarfile

import boto3.session
import botocore.credentials
import pytest

import irsa_session
from irsa_testing import ROLE_ARN

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
PACKAGE_DIR = os.path.dirname(os.path.abspath(irsa_session.__file__))
API_MD = os.path.join(ROOT, os.pardir, "shared", "design", "API.md")

EXPORTED = [
    "session",
    "assumed_role_session",
    "refreshable_credentials",
    "install",
    "pod_identity_session",
    "assume_role",
    "aio_session",
    "arrow_filesystem",
    "serve",
    "on_refresh",
    "IrsaError",
    "ConfigError",
    "TokenFileError",
    "RefreshError",
    "__version__",
]

KW = inspect.Parameter.KEYWORD_ONLY
POK = inspect.Parameter.POSITIONAL_OR_KEYWORD
COMMON = [
    ("role_arn", POK, None),
    ("token_file", POK, None),
    ("session_name", KW, None),
    ("region_name", KW, None),
    ("duration_seconds", KW, None),
    ("sts_endpoint_url", KW, None),
    ("policy", KW, None),
    ("policy_arns", KW, None),
]


def parameters(function):
    return [
        (p.name, p.kind, p.default) for p in inspect.signature(function).parameters.values()
    ]


# -- names -------------------------------------------------------------------


def test_all_is_exactly_the_exported_names():
    assert sorted(irsa_session.__all__) == sorted(EXPORTED)
    assert len(irsa_session.__all__) == len(set(irsa_session.__all__))


def test_every_exported_name_is_gettable():
    for name in EXPORTED:
        assert getattr(irsa_session, name) is not None, name
    assert "session" in dir(irsa_session)


def test_unknown_names_raise_attribute_error():
    with pytest.raises(AttributeError) as caught:
        irsa_session.no_such_name
    assert "no_such_name" in str(caught.value)


def test_star_import_gives_the_exported_names():
    namespace = {}
    exec("from irsa_session import *", namespace)
    assert set(EXPORTED) <= set(namespace)


@pytest.mark.skipif(not os.path.isfile(API_MD), reason="shared/design/API.md not found")
def test_exported_names_match_the_table_in_api_md():
    with open(API_MD) as handle:
        text = handle.read()
    def names(heading):
        section = text.split(heading, 1)[1].split("\n## ", 1)[0]
        return set(re.findall(r"^\|\s*`([A-Za-z_][A-Za-z0-9_]*)", section, re.M))

    exported, coming = names("## Names exported"), names("## Names the open issues add")
    # Every exported name of the contract is here; a name an open issue adds may be
    # exported before the contract's table lists it, and nothing else may.
    assert exported <= set(EXPORTED)
    assert set(EXPORTED) - exported <= coming, set(EXPORTED) - exported - coming


# -- version -----------------------------------------------------------------


def _pyproject_version():
    path = os.path.join(ROOT, "pyproject.toml")
    if not os.path.isfile(path):
        pytest.skip("pyproject.toml not found beside tests/")
    with open(path) as handle:
        text = handle.read()
    project = re.search(r"^\[project\]\s*$(.*?)(?=^\[|\Z)", text, re.M | re.S).group(1)
    static = re.search(r'^version\s*=\s*"([^"]+)"', project, re.M)
    if static:
        return static.group(1)
    assert re.search(r'^dynamic\s*=\s*\[[^\]]*"version"', project, re.M), project
    attr = re.search(r'^version\s*=\s*\{\s*attr\s*=\s*"([\w.]+)"\s*\}', text, re.M)
    assert attr, "pyproject.toml declares a dynamic version but no attr for it"
    module, _, name = attr.group(1).rpartition(".")
    source = os.path.join(ROOT, *module.split(".")) + ".py"
    with open(source) as handle:
        found = re.search(
            r"^%s\s*=\s*['\"]([^'\"]+)['\"]" % re.escape(name), handle.read(), re.M
        )
    assert found, "%s not assigned a string literal in %s" % (name, source)
    return found.group(1)


def test_version_matches_pyproject():
    assert irsa_session.__version__ == _pyproject_version()


def test_version_is_a_release_number():
    assert isinstance(irsa_session.__version__, str)
    assert re.match(r"^\d+\.\d+\.\d+", irsa_session.__version__)


# -- signatures --------------------------------------------------------------


def test_assumed_role_session_signature():
    # API.md's parameters in its order, then issue 4's opt-in node-wide cache.
    params = parameters(irsa_session.assumed_role_session)
    assert params == COMMON + [("fallback", KW, True), ("cache_dir", KW, None)]
    assert params[-2][2] is True


def test_refreshable_credentials_signature():
    assert parameters(irsa_session.refreshable_credentials) == COMMON


def test_install_takes_keyword_arguments_only():
    params = list(inspect.signature(irsa_session.install).parameters.values())
    assert [p.kind for p in params] == [inspect.Parameter.VAR_KEYWORD]


def test_public_functions_have_docstrings():
    for name in ("assumed_role_session", "refreshable_credentials", "install"):
        doc = getattr(irsa_session, name).__doc__
        assert doc and doc.strip(), name


# -- errors ------------------------------------------------------------------


def test_exception_hierarchy():
    assert issubclass(irsa_session.IrsaError, Exception)
    for name in ("ConfigError", "TokenFileError", "RefreshError"):
        assert issubclass(getattr(irsa_session, name), irsa_session.IrsaError), name
    assert issubclass(irsa_session.ConfigError, ValueError)
    assert not issubclass(irsa_session.TokenFileError, irsa_session.ConfigError)
    assert not issubclass(irsa_session.RefreshError, irsa_session.ConfigError)
    assert not issubclass(irsa_session.TokenFileError, ValueError)


# -- the default session -----------------------------------------------------


def test_default_session_is_one_boto3_session():
    from irsa_session import session as first
    from irsa_session import session as second

    assert isinstance(first, boto3.session.Session)
    assert first is second
    assert irsa_session.session is irsa_session.session
    assert irsa_session.session is first


def _closed_port():
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.bind(("127.0.0.1", 0))
    port = sock.getsockname()[1]
    sock.close()
    return port


_AUDIT = {"paths": None, "events": []}


def _audit(event, args):
    paths = _AUDIT["paths"]
    if paths is None:
        return
    if event == "open" and args and isinstance(args[0], (str, bytes, os.PathLike)):
        if os.fsdecode(args[0]) in paths:
            _AUDIT["events"].append((event, os.fsdecode(args[0])))
    elif event == "socket.connect":
        _AUDIT["events"].append((event, args[1] if len(args) > 1 else None))


if hasattr(sys, "addaudithook"):
    sys.addaudithook(_audit)


@pytest.fixture
def untouchable(monkeypatch, tmp_path):
    """IRSA variables whose token file is absent and whose STS port is closed;
    records any token read and any connection attempt."""
    path = str(tmp_path / "absent" / "token")
    url = "http://127.0.0.1:%d" % _closed_port()
    monkeypatch.setenv("AWS_ROLE_ARN", ROLE_ARN)
    monkeypatch.setenv("AWS_WEB_IDENTITY_TOKEN_FILE", path)
    monkeypatch.setenv("AWS_STS_REGIONAL_ENDPOINTS", "regional")
    monkeypatch.setenv("AWS_REGION", "us-west-2")
    monkeypatch.setenv("AWS_ENDPOINT_URL_STS", url)
    events = []

    # Every way the package opens a file goes through one of these two: a spy on
    # each catches a token read on 3.7 too, where the audit hook below does not exist.
    for module, name in ((os, "open"), (builtins, "open")):
        real_open = getattr(module, name)

        def spy_open(file, *args, _real=real_open, **kwargs):
            if isinstance(file, (str, bytes, os.PathLike)) and os.fsdecode(file) == path:
                events.append(("token.read", os.fsdecode(file)))
            return _real(file, *args, **kwargs)

        monkeypatch.setattr(module, name, spy_open)
    for method in ("connect", "connect_ex"):
        real = getattr(socket.socket, method)

        def spy(self, address, _real=real, _method=method):
            events.append((_method, address))
            return _real(self, address)

        monkeypatch.setattr(socket.socket, method, spy)
    _AUDIT["paths"] = {path}
    _AUDIT["events"] = events
    try:
        yield events
    finally:
        _AUDIT["paths"] = None
        _AUDIT["events"] = []


def test_accessing_the_default_session_reads_and_calls_nothing(untouchable):
    session = irsa_session.session
    assert isinstance(session, boto3.session.Session)
    assert session.region_name == "us-west-2"
    assert irsa_session.session is session
    assert untouchable == []


def test_creating_a_client_does_not_touch_the_token(untouchable):
    session = irsa_session.session
    client = session.client("s3", region_name="us-west-2")
    assert client.meta.region_name == "us-west-2"
    # The IRSA credentials, not a fallback chain, and still not fetched.
    assert isinstance(session.get_credentials(), botocore.credentials.RefreshableCredentials)
    assert untouchable == []


# -- packaging ---------------------------------------------------------------


@pytest.mark.skipif(
    not os.environ.get("IRSA_TEST_VENDORED"), reason="only in the vendored-copy run"
)
def test_vendored_copy_is_used_without_cachetools():
    vendor = os.path.realpath(os.environ["IRSA_TEST_VENDORED"])
    assert os.path.realpath(irsa_session.__file__).startswith(vendor + os.sep)
    with pytest.raises(ImportError):
        import cachetools  # noqa: F401


def _package_sources():
    sources = sorted(glob.glob(os.path.join(PACKAGE_DIR, "**", "*.py"), recursive=True))
    assert os.path.join(PACKAGE_DIR, "__init__.py") in sources
    assert os.path.join(PACKAGE_DIR, "cli", "main.py") in sources  # subpackages too
    return sources


def test_package_sources_parse_as_python_37():
    for path in _package_sources():
        with open(path, "rb") as handle:
            source = handle.read()
        if sys.version_info >= (3, 8):
            ast.parse(source, filename=path, feature_version=(3, 7))
        else:
            compile(source, path, "exec", dont_inherit=True)



def test_public_callables_are_fully_annotated():
    # Issue 14: the public API is typed (py.typed ships); tools/typecheck.py checks
    # the types with mypy, this checks none is left out.
    unannotated = []
    for name in EXPORTED:
        value = getattr(irsa_session, name)
        if name == "session" or not callable(value):
            continue
        if isinstance(value, type):
            if not any("__init__" in vars(cls) for cls in value.__mro__ if cls.__module__.startswith("irsa_session")):
                continue  # IrsaError: Exception's own constructor
            function = value.__init__
        else:
            function = value
        signature = inspect.signature(function)
        missing = [p.name for p in signature.parameters.values()
                   if p.name != "self" and p.annotation is inspect.Parameter.empty]
        if missing or signature.return_annotation is inspect.Signature.empty:
            unannotated.append("%s %s" % (name, missing or "return"))
    assert unannotated == []
    assert os.path.isfile(os.path.join(PACKAGE_DIR, "py.typed"))


def test_the_sdist_ships_every_tracked_test_file_and_no_junk(tmp_path):
    # Issue 15: the sdist shipped tests without the helpers they import.
    setuptools = pytest.importorskip("setuptools")
    if int(setuptools.__version__.split(".")[0]) < 61:
        pytest.skip("setuptools %s cannot build from pyproject.toml" % setuptools.__version__)
    try:
        listed = subprocess.run(
            ["git", "ls-files", "-z", "tests", "testing", "examples", "benchmarks", "tools", "docs"],
            cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, check=True,
        ).stdout.decode().split("\0")
    except (OSError, subprocess.CalledProcessError):
        pytest.skip("not a git checkout (an unpacked sdist, or a vendored copy)")
    tracked = set(name for name in listed if name)
    tree = str(tmp_path / "tree")
    unbuilt = shutil.ignore_patterns(".git", ".nox", ".venv*", ".mypy_cache", "*.egg-info", "build", "dist")
    shutil.copytree(ROOT, tree, ignore=unbuilt)
    os.makedirs(os.path.join(tree, ".hypothesis", "examples"), exist_ok=True)  # as a test run leaves it
    out = subprocess.run(
        [sys.executable, "-c", "from setuptools import build_meta; print(build_meta.build_sdist('dist'))"],
        cwd=tree, stdout=subprocess.PIPE, stderr=subprocess.PIPE, universal_newlines=True,
    )
    assert out.returncode == 0, out.stderr[-2000:]
    with tarfile.open(os.path.join(tree, "dist", out.stdout.split()[-1])) as sdist:
        names = set(name.split("/", 1)[1] for name in sdist.getnames() if "/" in name)
    assert tracked <= names, sorted(tracked - names)
    assert {"LICENSE", "README.md", "CHANGELOG.md", "noxfile.py", "irsa_session/py.typed"} <= names
    junk = [name for name in names if ".hypothesis" in name or "__pycache__" in name or name.endswith(".pyc")
            or "/_build/" in name or name.endswith("timeline.mmd")]
    assert not junk, junk
    # Issue 26: its tests run from it, with its own stand-ins (irsa_testing) and nothing of the tree.
    unpacked = tmp_path / "unpacked"
    with tarfile.open(os.path.join(tree, "dist", out.stdout.split()[-1])) as sdist:
        sdist.extractall(str(unpacked))
    top = os.path.join(str(unpacked), os.listdir(str(unpacked))[0])
    env = dict(os.environ, PYTHONPATH=os.pathsep.join([os.path.join(top, "testing"), top]))
    ran = subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "tests/test_token.py", "tests/test_layers.py"],
        cwd=top, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, universal_newlines=True,
    )
    assert ran.returncode == 0, ran.stdout[-3000:]
    assert " passed" in ran.stdout.strip().splitlines()[-1]


def test_the_installed_distribution_ships_the_license_and_the_cli():
    # Issue 15: the LICENSE text travels with the wheel; issue 14: so do cli/ and py.typed.
    try:
        from importlib import metadata
    except ImportError:  # Python 3.7: no importlib.metadata
        metadata = pytest.importorskip("importlib_metadata")
    try:
        distribution = metadata.distribution("irsa-session")
    except metadata.PackageNotFoundError:
        pytest.skip("irsa-session is not installed here (a vendored copy or the source tree)")
    installed = os.path.realpath(str(distribution.locate_file("irsa_session")))
    if installed != os.path.realpath(PACKAGE_DIR):
        pytest.skip("the irsa_session imported is not the installed one")
    files = [str(path) for path in distribution.files or ()]
    assert any(os.path.basename(name) == "LICENSE" for name in files), files
    for name in ("irsa_session/py.typed", "irsa_session/cli/doctor.py", "irsa_session/cli/main.py"):
        assert name in files, name


def test_the_data_stack_has_extras_to_install_it_by():
    """pip install 'irsa-session[aio]' (s3fs, pandas) or '[arrow]' (pyarrow, Ray)."""
    with open(os.path.join(ROOT, "pyproject.toml")) as handle:
        text = handle.read()
    extras = text.split("[project.optional-dependencies]", 1)[1].split("\n[", 1)[0]
    declared = dict(re.findall(r"^(\w+) = (\[.*\])$", extras, re.M))
    assert "aiobotocore" in declared.get("aio", "") and "s3fs" in declared.get("aio", "")
    assert "pyarrow" in declared.get("arrow", "")
    assert "opentelemetry-api" in declared.get("otel", "")  # issue 25
