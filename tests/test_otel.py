"""OpenTelemetry metrics of every credential fetch, read back with the SDK's in-memory reader.

The figures must match the fake servers' own call logs.  The tests-newest-3.11 row
has the OpenTelemetry SDK (its job is to run this module: no skips there); the
legacy rows have none and test the events alone (tests/test_events.py).
"""

import time

import pytest

from irsa_testing.rows import need

ROWS = ("tests-newest-3.11",)
need("opentelemetry.sdk.metrics", ROWS)

from opentelemetry.sdk.metrics import MeterProvider  # noqa: E402
from opentelemetry.sdk.metrics.export import InMemoryMetricReader  # noqa: E402

import irsa_session  # noqa: E402
from irsa_session import _background, _events, _otel, sessions  # noqa: E402
from irsa_session._refresh import windows  # noqa: E402
from irsa_testing.chainsts import ChainSTS  # noqa: E402
from irsa_testing.datastack import pod_identity_pod  # noqa: E402,F401  (a fixture)
from irsa_testing.leaks import assert_clean, secrets_of  # noqa: E402
from irsa_testing.processes import lines_of  # noqa: E402

from conftest import ROLE_ARN  # noqa: E402

WI = "AssumeRoleWithWebIdentity"
TARGET = "arn:aws:iam::444455556666:role/cross/reader"
SOURCE, REASON, RESULT, ROLE = "irsa_session.source", "irsa_session.reason", "irsa_session.result", "aws.iam.role.arn"


class Metrics(object):
    """The library's instruments on a MeterProvider of the test's own."""

    def __init__(self):
        self.reader = InMemoryMetricReader()
        self.provider = MeterProvider(metric_readers=[self.reader])

    def points(self, name):
        """[(attributes, point)] of instrument ``name``."""
        found = []
        data = self.reader.get_metrics_data()
        for resource in (data.resource_metrics if data else []):
            for scope in resource.scope_metrics:
                assert scope.scope.name == "irsa_session"
                for metric in scope.metrics:
                    if metric.name == name:
                        found += [(dict(point.attributes), point) for point in metric.data.data_points]
        return found

    def sums(self, name, *keys):
        """{tuple of the attributes ``keys``: value} of a counter."""
        totals = {}
        for attributes, point in self.points(name):
            key = tuple(attributes.get(k) for k in keys)
            totals[key] = totals.get(key, 0) + point.value
        return totals

    def units(self):
        data = self.reader.get_metrics_data()
        return dict((metric.name, metric.unit) for resource in data.resource_metrics
                    for scope in resource.scope_metrics for metric in scope.metrics)


@pytest.fixture
def metrics(monkeypatch):
    """The library records to a fresh MeterProvider with an in-memory reader."""
    held = Metrics()
    monkeypatch.setattr(_events, "_metrics", [_otel.recorder(held.provider)])
    yield held
    assert _background.idle(10)


def calls(sts, action=WI):
    return [call for call in sts.calls if call["action"] == action]


def mandatory_now(session):
    refresher = session.get_credentials()._refresher
    refresher.set_expiry(time.time() + windows(refresher.life)[1] - 1)


def test_fetches_attempts_durations_and_expiry_match_sts_s_log(fake_env, metrics):
    session = irsa_session.assumed_role_session()
    session.get_credentials().get_frozen_credentials()  # first use
    fake_env.fail_next(1, code="Throttling")
    fake_env.set_mode(duration=7200, honor_duration=False)  # the gauge must move to the new expiry
    mandatory_now(session)
    session.get_credentials().get_frozen_credentials()  # a throttled try, then its retry
    assert fake_env.issued[1]["expiration"] > fake_env.issued[0]["expiration"] + 3000
    fake_env.set_mode(always_fail=("AccessDenied", None))
    with pytest.raises(irsa_session.RefreshError):
        irsa_session.assumed_role_session(session_name="denied").get_credentials().get_frozen_credentials()
    log = calls(fake_env)
    assert [call["answered"] for call in log] == ["ok", "Throttling", "ok", "AccessDenied"]

    assert metrics.sums("irsa_session.credentials.fetches", SOURCE, REASON, RESULT, ROLE) == {
        ("IRSA", "first", "ok", ROLE_ARN): 1,
        ("IRSA", "mandatory", "ok", ROLE_ARN): 1,
        ("IRSA", "first", "AccessDenied", ROLE_ARN): 1,
    }
    attempts = metrics.sums("irsa_session.credentials.fetch.attempts", SOURCE, RESULT)
    assert sum(attempts.values()) == len(log)
    assert attempts == {("IRSA", "ok"): 3, ("IRSA", "AccessDenied"): 1}
    durations = metrics.points("irsa_session.credentials.fetch.duration")
    assert sum(point.count for _, point in durations) == 3
    assert max(point.max for _, point in durations) >= 0.25  # the retry's wait
    gauge = metrics.points("irsa_session.credentials.expiry")
    assert [(a, p.value) for a, p in gauge] == [({SOURCE: "IRSA", ROLE: ROLE_ARN}, fake_env.issued[-1]["expiration"])]
    assert metrics.units() == {
        "irsa_session.credentials.expiry": "s",
        "irsa_session.credentials.fetches": "{fetch}",
        "irsa_session.credentials.fetch.duration": "s",
        "irsa_session.credentials.fetch.attempts": "{attempt}",
    }


def test_pod_identity_and_a_chain_are_counted_by_source(pod_identity_pod, metrics):
    irsa_session.pod_identity_session().get_credentials().get_frozen_credentials()
    assert metrics.sums("irsa_session.credentials.fetches", SOURCE, RESULT) == {("EKS Pod Identity", "ok"): 1}
    assert metrics.sums("irsa_session.credentials.fetch.attempts", SOURCE) == {
        ("EKS Pod Identity",): len(pod_identity_pod.calls)}
    gauge = metrics.points("irsa_session.credentials.expiry")
    assert [(a, p.value) for a, p in gauge] == [({SOURCE: "EKS Pod Identity"}, pod_identity_pod.issued[0]["expiration"])]


def test_a_chain_s_hops_each_have_their_expiry(irsa_env, monkeypatch, metrics):
    with ChainSTS(trust={TARGET: {"principals": [ROLE_ARN]}}) as sts:
        monkeypatch.setenv("AWS_ENDPOINT_URL_STS", sts.url)
        irsa_session.assume_role(TARGET).get_credentials().get_frozen_credentials()
        assert metrics.sums("irsa_session.credentials.fetches", SOURCE, ROLE) == {
            ("IRSA", ROLE_ARN): 1, ("AssumeRole", TARGET): 1}
        gauge = dict((a[ROLE], p.value) for a, p in metrics.points("irsa_session.credentials.expiry"))
        assert gauge == {ROLE_ARN: sts.issued[0]["expiration"], TARGET: sts.issued[1]["expiration"]}
        assert len(calls(sts)) + len(calls(sts, "AssumeRole")) == 2


def test_node_cache_hits_are_counted(fake_env, metrics, tmp_path):
    irsa_session.assumed_role_session(cache_dir=str(tmp_path)).get_credentials().get_frozen_credentials()
    sessions._registry.clear()
    irsa_session.assumed_role_session(cache_dir=str(tmp_path)).get_credentials().get_frozen_credentials()
    assert metrics.sums("irsa_session.node_cache.hits", SOURCE) == {("node cache",): 1}
    assert metrics.sums("irsa_session.credentials.fetch.attempts", SOURCE) == {("IRSA",): 1}
    assert len(calls(fake_env)) == 1


def test_no_secret_reaches_the_metrics(fake_env, metrics):
    irsa_session.assumed_role_session().get_credentials().get_frozen_credentials()
    data = metrics.reader.get_metrics_data().to_json()
    assert_clean([data], secrets_of(fake_env))


def test_the_application_s_global_meter_provider_gets_them_set_before_or_after(fake_env):
    """In a fresh process: the library's first fetch comes before the application sets
    its MeterProvider, the second after; the API's proxy meter hands both on."""
    code = (
        "import time, irsa_session\n"
        "from opentelemetry import metrics\n"
        "from opentelemetry.sdk.metrics import MeterProvider\n"
        "from opentelemetry.sdk.metrics.export import InMemoryMetricReader\n"
        "session = irsa_session.session\n"
        "session.get_credentials().get_frozen_credentials()\n"  # before: not counted
        "reader = InMemoryMetricReader()\n"
        "metrics.set_meter_provider(MeterProvider(metric_readers=[reader]))\n"
        "refresher = session.get_credentials()._refresher\n"
        "refresher.set_expiry(time.time() + 1)\n"
        "session.get_credentials().get_frozen_credentials()\n"
        "for r in reader.get_metrics_data().resource_metrics:\n"
        "    for s in r.scope_metrics:\n"
        "        for m in s.metrics:\n"
        "            for p in m.data.data_points:\n"
        "                print(m.name, getattr(p, 'value', getattr(p, 'count', None)))\n"
    )
    figures = dict((name, float(value)) for name, value in (line.split() for line in lines_of(code)))
    assert figures["irsa_session.credentials.fetches"] == 1  # the one after it was set
    assert figures["irsa_session.credentials.expiry"] == fake_env.issued[-1]["expiration"]
    assert len(calls(fake_env)) == 2


def test_opentelemetry_is_imported_at_the_first_fetch_never_at_import(fake_env):
    out = lines_of(
        "import sys, irsa_session\n"
        "print('opentelemetry' in sys.modules)\n"
        "irsa_session.session.get_credentials().get_frozen_credentials()\n"
        "print(sorted(m for m in sys.modules if m.startswith('opentelemetry.sdk')))\n"
    )
    assert out == ["False", "[]"]  # the API after the first fetch, never the SDK
