"""Every Python and shell snippet of the README and the docs runs as written (tests-data row).

Each page runs in a process of its own (irsa_testing/snippets.py, on Sybil), in a
copy of the checkout, in a pod played on loopback: the IRSA variables with a
ChainSTS as STS (which also answers the pages' AssumeRole hops), and moto as S3
behind the proxy that passes only requests signed by keys that STS issued.  The
buckets and objects the pages name are there.  A snippet that needs what no
loopback can play (a Kubernetes cluster, real AWS, an OTLP collector) is skipped
by a ``<!-- skip: next "why" -->`` line in the page, which says why.
"""

import glob
import io
import os
import shutil

import boto3
import pytest

from irsa_testing.rows import need

ROWS = ("tests-data",)
need("sybil", ROWS)
pa = need("pyarrow", ROWS)
deltalake = need("deltalake", ROWS)

from irsa_testing.chainsts import ChainSTS  # noqa: E402
from irsa_testing.processes import run_python  # noqa: E402
from irsa_testing.s3proxy import S3Proxy  # noqa: E402

from conftest import ROLE_ARN  # noqa: E402

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
PAGES = ["README.md"] + sorted(
    os.path.relpath(path, ROOT) for path in glob.glob(os.path.join(ROOT, "docs", "**", "*.md"), recursive=True)
    if "_build" not in path
)
HUB = "arn:aws:iam::444455556666:role/hub"
TRUST = {
    "arn:aws:iam::444455556666:role/datasets-reader": {"principals": [ROLE_ARN]},
    HUB: {"principals": [ROLE_ARN]},
    "arn:aws:iam::777788889999:role/warehouse": {"principals": [HUB]},
}
OBJECTS = {
    "my-bucket": ["raw/readings.csv", "raw/readings.parquet", "data/part-0.parquet", "readings/part-0.parquet",
                  "readings/part-1.parquet", "a.parquet", "b.parquet"],
    "team-a-datasets": ["2024/train.parquet", "2024/test.parquet"],
}


def has_snippets(page):
    with open(os.path.join(ROOT, page)) as handle:
        text = handle.read()
    return "```python" in text or "```sh" in text


@pytest.fixture(scope="module")
def checkout(tmp_path_factory):
    """A copy of the checkout, where the pages' commands run (``pip wheel`` writes there)."""
    folder = tmp_path_factory.mktemp("docs") / "checkout"
    shutil.copytree(ROOT, str(folder), ignore=shutil.ignore_patterns(
        ".git", ".nox", ".venv-dev", "build", "dist", "_build", "__pycache__", "*.egg-info"))
    return folder


@pytest.fixture(scope="module")
def buckets(moto_server, tmp_path_factory):
    """The buckets and objects the pages name, on moto (put there directly)."""
    with pytest.MonkeyPatch.context() as patch:
        for name in list(os.environ):
            if name.lower().endswith("_proxy"):
                patch.delenv(name)
        s3 = boto3.client("s3", endpoint_url=moto_server.url, region_name="us-west-2",
                          aws_access_key_id="testing", aws_secret_access_key="testing")
        table = pa.table({"city": ["oslo", "lima", "cairo"], "reading": [3, 19, 27]})
        for bucket, keys in OBJECTS.items():
            s3.create_bucket(Bucket=bucket, CreateBucketConfiguration={"LocationConstraint": "us-west-2"})
            for key in keys:
                s3.put_object(Bucket=bucket, Key=key, Body=_body(key, table))
        _put_delta_table(s3, table, tmp_path_factory.mktemp("delta") / "table")
    return sorted(OBJECTS)


@pytest.fixture
def pod(moto_server, buckets, checkout, tmp_path):
    """(env, sts, proxy, checkout): a pod on loopback, and the copy of the checkout."""
    from irsa_testing.tokens import make_token

    token = tmp_path / "token"
    token.write_text(make_token())
    with ChainSTS(trust=TRUST) as sts, S3Proxy(moto_server.url, lambda: sts.issued) as proxy:
        env = dict((name, None) for name in os.environ if name.startswith("AWS_"))
        env.update(
            AWS_ROLE_ARN=ROLE_ARN, AWS_WEB_IDENTITY_TOKEN_FILE=str(token), AWS_REGION="us-west-2",
            AWS_DEFAULT_REGION="us-west-2",  # the webhook sets both
            AWS_ENDPOINT_URL_STS=sts.url, AWS_ENDPOINT_URL_S3=proxy.url, AWS_ENDPOINT_URL=proxy.url,
            AWS_ALLOW_HTTP="true", AWS_EC2_METADATA_DISABLED="true",
            AWS_CONFIG_FILE=os.devnull, AWS_SHARED_CREDENTIALS_FILE=os.devnull,
            RAY_USAGE_STATS_ENABLED="0", MPLBACKEND="Agg",
        )
        yield env, sts, proxy, checkout


def _body(key, table):
    if key.endswith(".csv"):
        return b"city,reading\noslo,3\nlima,19\ncairo,27\n"
    import pyarrow.parquet as pq

    out = io.BytesIO()
    pq.write_table(table, out)
    return out.getvalue()


def _put_delta_table(s3, table, local):
    deltalake.write_deltalake(str(local), table)
    for folder, _, files in os.walk(str(local)):
        for name in files:
            path = os.path.join(folder, name)
            with open(path, "rb") as handle:
                key = "table/" + os.path.relpath(path, str(local)).replace(os.sep, "/")
                s3.put_object(Bucket="my-bucket", Key=key, Body=handle.read())


@pytest.mark.parametrize("page", [page for page in PAGES if has_snippets(page)])
def test_every_snippet_runs_as_written(page, pod):
    env, sts, proxy, checkout = pod
    code = "import sys\nfrom irsa_testing import snippets\nsys.argv[1:] = [%r]\nsnippets.main()\n" % (
        str(checkout / page))
    out = run_python(code, env=env, timeout=600, cwd=str(checkout)).decode()
    assert out.strip().splitlines()[-1].endswith(" 0 failed"), out
    refused = [seen for seen in proxy.seen if seen.verdict != "ok"]
    assert refused == []
    assert set(proxy.keys()) <= set(issued["access_key"] for issued in sts.issued)
    print(out.strip().splitlines()[-1])


def test_every_page_is_checked():
    """A page with snippets is run above; the list is not left behind by a new page."""
    assert "docs/guides/serve.md" in PAGES and "README.md" in PAGES
    assert len([page for page in PAGES if has_snippets(page)]) >= 10


@pytest.mark.parametrize("page, text, warning", [
    ("docs/guides/use.md", "\nSee [the missing page](nowhere.md).\n", "nowhere"),
    ("docs/index.md", "\n```{toctree}\nguides/missing\n```\n", "missing"),
    ("docs/reference/api.md", "\n{py:func}`irsa_session.no_such_function`\n", "no_such_function"),
])
def test_the_site_s_strict_build_fails_on_a_broken_link_a_missing_page_or_an_unknown_name(
    page, text, warning, tmp_path
):
    import subprocess
    import sys

    need("sphinx", ROWS)
    docs = tmp_path / "docs"
    shutil.copytree(os.path.join(ROOT, "docs"), str(docs), ignore=shutil.ignore_patterns("_build"))
    sphinx = [sys.executable, "-m", "sphinx", "-W", "--keep-going", "-n", "-q", "-b", "html", str(docs),
              str(tmp_path / "html")]
    env = dict(os.environ, PYTHONPATH=ROOT)
    assert subprocess.run(sphinx, env=env, stderr=subprocess.PIPE).returncode == 0  # as it is
    with open(str(docs / page.split("/", 1)[1]), "a") as handle:
        handle.write(text)
    broken = subprocess.run(sphinx, env=env, stderr=subprocess.PIPE, universal_newlines=True)
    assert broken.returncode != 0 and warning in broken.stderr
