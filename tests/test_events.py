"""on_refresh(): an event for every credential fetch, checked against the servers' own logs.

Runs in every row (no OpenTelemetry needed); tests/test_otel.py checks the metrics.
"""

import logging
import pickle
import threading
import time

import pytest

import irsa_session
from irsa_session import _background, _events, sessions
from irsa_session._refresh import windows
from irsa_testing.chainsts import ChainSTS
from irsa_testing.datastack import pod_identity_pod  # noqa: F401  (a fixture)
from irsa_testing.leaks import assert_clean, secrets_of

from conftest import ROLE_ARN

WI = "AssumeRoleWithWebIdentity"
TARGET = "arn:aws:iam::444455556666:role/cross/reader"


@pytest.fixture
def events():
    """Every event from now on, in order (after ``delivered()``)."""
    got = []
    unsubscribe = irsa_session.on_refresh(got.append)
    yield got
    unsubscribe()


def settle(events):
    assert _background.idle(10)
    assert _events.delivered(10)
    return list(events)


def web_identity_calls(sts):
    return [call for call in sts.calls if call["action"] == WI]


def refresher_of(session):
    return session.get_credentials()._refresher


def test_each_fetch_is_an_event_that_matches_sts_s_log(fake_env, events):
    session = irsa_session.assumed_role_session()
    refresher = refresher_of(session)
    session.get_credentials().get_frozen_credentials()  # first use
    fake_env.fail_next(1, code="Throttling")
    refresher.set_expiry(time.time() + windows(refresher.life)[1] - 1)  # mandatory: callers wait
    session.get_credentials().get_frozen_credentials()
    refresher.set_expiry(time.time() + windows(refresher.life)[1] + 1)  # advisory (jitter or not): background
    session.get_credentials().get_frozen_credentials()
    seen = settle(events)
    calls = web_identity_calls(fake_env)
    assert [call["answered"] for call in calls] == ["ok", "Throttling", "ok", "ok"]
    assert [(e.source, e.reason, e.result, e.attempts) for e in seen] == [
        ("IRSA", "first", "ok", 1),
        ("IRSA", "mandatory", "ok", 2),  # the throttled try and its retry
        ("IRSA", "background", "ok", 1),
    ]
    assert sum(e.attempts for e in seen) == len(calls)
    assert [e.expiry for e in seen] == [issued["expiration"] for issued in fake_env.issued]
    for event in seen:
        assert event.role_arn == ROLE_ARN
        assert event.session_name == calls[0]["params"]["RoleSessionName"]
        assert 0 <= event.duration < 30 and abs(event.time - time.time()) < 30
    assert seen[1].duration >= 0.25  # the retry's wait (at least half of 0.5 s)


def test_the_call_that_made_a_fetch_returns_once_the_callbacks_had_its_event(fake_env):
    got = []

    def slow(event):
        time.sleep(0.05)
        got.append(event)

    unsubscribe = irsa_session.on_refresh(slow)
    try:
        irsa_session.assumed_role_session().get_credentials().get_frozen_credentials()
        assert [e.reason for e in got] == ["first"]  # no waiting here: the call did
        fake_env.set_mode(always_fail=("AccessDenied", None))
        with pytest.raises(irsa_session.RefreshError):
            irsa_session.assumed_role_session(session_name="denied").get_credentials().get_frozen_credentials()
        assert [e.result for e in got] == ["ok", "AccessDenied"]
    finally:
        unsubscribe()


def test_a_refusal_is_an_event_with_the_error_s_code_and_no_expiry(fake_env, events):
    fake_env.set_mode(always_fail=("AccessDenied", None))
    with pytest.raises(irsa_session.RefreshError):
        irsa_session.assumed_role_session().get_credentials().get_frozen_credentials()
    seen = settle(events)
    assert [(e.result, e.attempts, e.expiry) for e in seen] == [("AccessDenied", 1, None)]
    assert len(web_identity_calls(fake_env)) == 1


def test_a_token_that_cannot_be_read_is_an_event_too(fake_env, events, monkeypatch, tmp_path):
    monkeypatch.setenv("AWS_WEB_IDENTITY_TOKEN_FILE", str(tmp_path / "missing"))
    with pytest.raises(irsa_session.TokenFileError):
        irsa_session.assumed_role_session().get_credentials().get_frozen_credentials()
    assert [(e.result, e.attempts) for e in settle(events)] == [("TokenFileError", 0)]


def test_a_service_s_expired_token_refresh_is_an_event(fake_env, events):
    session = irsa_session.assumed_role_session()
    credentials = session.get_credentials()
    credentials.get_frozen_credentials()
    credentials._refresher.refresh_expired(credentials._refresher.generation)
    assert [e.reason for e in settle(events)] == ["first", "expired-token"]
    assert len(web_identity_calls(fake_env)) == 2


def test_pod_identity_fetches_are_events_of_their_source(pod_identity_pod, events):
    session = irsa_session.pod_identity_session()
    session.get_credentials().get_frozen_credentials()
    pod_identity_pod.fail_next(1, status=500)
    refresher = refresher_of(session)
    refresher.set_expiry(time.time() + windows(refresher.life)[1] - 1)
    session.get_credentials().get_frozen_credentials()
    seen = settle(events)
    assert [(e.source, e.reason, e.result, e.attempts, e.role_arn) for e in seen] == [
        ("EKS Pod Identity", "first", "ok", 1, None),
        ("EKS Pod Identity", "mandatory", "ok", 2, None),
    ]
    assert sum(e.attempts for e in seen) == len(pod_identity_pod.calls)
    assert [e.expiry for e in seen] == [issued["expiration"] for issued in pod_identity_pod.issued]


def test_a_chain_makes_one_event_per_hop(irsa_env, monkeypatch, events):
    with ChainSTS(trust={TARGET: {"principals": [ROLE_ARN]}}) as sts:
        monkeypatch.setenv("AWS_ENDPOINT_URL_STS", sts.url)
        chained = irsa_session.assume_role(TARGET, session_name="hop")
        chained.get_credentials().get_frozen_credentials()
        seen = settle(events)
        assert [(e.source, e.role_arn, e.result) for e in seen] == [
            ("IRSA", ROLE_ARN, "ok"), ("AssumeRole", TARGET, "ok"),
        ]
        assert seen[1].session_name == "hop"
        assert [call["action"] for call in sts.calls] == [WI, "AssumeRole"]
        assert [e.expiry for e in seen] == [issued["expiration"] for issued in sts.issued]


def test_a_node_cache_hit_is_an_event_with_no_request(fake_env, events, tmp_path):
    first = irsa_session.assumed_role_session(cache_dir=str(tmp_path))
    first.get_credentials().get_frozen_credentials()
    sessions._registry.clear()  # as another process would, find no credentials in memory
    second = irsa_session.assumed_role_session(cache_dir=str(tmp_path))
    second.get_credentials().get_frozen_credentials()
    seen = settle(events)
    assert [(e.source, e.result, e.attempts) for e in seen] == [("IRSA", "ok", 1), ("node cache", "ok", 0)]
    assert seen[1].expiry == fake_env.issued[0]["expiration"] and seen[1].role_arn == ROLE_ARN
    assert len(web_identity_calls(fake_env)) == 1


def test_events_carry_no_secret(fake_env, events, tmp_path):
    session = irsa_session.assumed_role_session(cache_dir=str(tmp_path))
    session.get_credentials().get_frozen_credentials()
    sessions._registry.clear()
    irsa_session.assumed_role_session(cache_dir=str(tmp_path)).get_credentials().get_frozen_credentials()
    fake_env.set_mode(always_fail=("AccessDenied", None))
    with pytest.raises(irsa_session.RefreshError):
        irsa_session.assumed_role_session(session_name="other").get_credentials().get_frozen_credentials()
    seen = settle(events)
    assert len(seen) == 3
    assert_clean([repr(seen), str(seen), pickle.dumps(seen)], secrets_of(fake_env))


def test_a_callback_that_raises_is_logged_and_neither_it_nor_others_lose_events(fake_env, capture):
    got = []

    def broken(event):
        raise ValueError("the callback's own bug")

    stop_broken = irsa_session.on_refresh(broken)
    stop_good = irsa_session.on_refresh(got.append)
    try:
        session = irsa_session.assumed_role_session()
        session.get_credentials().get_frozen_credentials()
        refresher = refresher_of(session)
        refresher.set_expiry(time.time() + windows(refresher.life)[1] - 1)
        session.get_credentials().get_frozen_credentials()
        assert _events.delivered(10)
    finally:
        stop_broken()
        stop_good()
    assert [e.reason for e in got] == ["first", "mandatory"]
    warnings = [line for line in capture.lines if "broken raised ValueError" in line]
    assert len(warnings) == 2 and "WARNING" in warnings[0] and "DEBUG" in warnings[1]
    assert not any("own bug" in line for line in capture.lines)


def test_a_callback_that_blocks_delays_no_refresh_and_excess_events_are_dropped(fake_env, capture, monkeypatch):
    monkeypatch.setattr(_events, "QUEUED", 3)
    release = threading.Event()
    entered = threading.Event()
    got = []

    def stuck(event):
        entered.set()
        release.wait(30)
        got.append(event)

    unsubscribe = irsa_session.on_refresh(stuck)
    try:
        session = irsa_session.assumed_role_session()
        refresher = refresher_of(session)
        session.get_credentials().get_frozen_credentials()
        assert entered.wait(10)  # the callback holds the first event
        started = time.monotonic()
        for _ in range(5):  # five more fetches while it is stuck: 3 queue, 2 dropped
            refresher.set_expiry(time.time() + windows(refresher.life)[1] - 1)
            session.get_credentials().get_frozen_credentials()
        waited = time.monotonic() - started
        assert len(web_identity_calls(fake_env)) == 6
        assert _events.dropped() == 2
        release.set()
        assert _events.delivered(10)
    finally:
        release.set()
        unsubscribe()
    assert waited < 2  # the refreshes did not wait for the stuck callback (it held for 30 s)
    assert len(got) == 4
    assert sum("not keeping up" in line for line in capture.lines) == 1


def test_unsubscribe_stops_events_and_a_bad_callback_is_a_type_error(fake_env):
    got = []
    unsubscribe = irsa_session.on_refresh(got.append)
    irsa_session.assumed_role_session().get_credentials().get_frozen_credentials()
    assert _events.delivered(10)
    unsubscribe()
    unsubscribe()  # twice: nothing
    irsa_session.assumed_role_session(session_name="later").get_credentials().get_frozen_credentials()
    assert _events.delivered(10)
    assert len(got) == 1
    with pytest.raises(TypeError, match="give a function that takes one event, not str"):
        irsa_session.on_refresh("print")


def test_a_forked_child_delivers_its_own_events_to_the_same_callbacks(fake_env, events):
    import os

    from irsa_testing.processes import in_child

    irsa_session.session.get_credentials().get_frozen_credentials()
    settle(events)
    got_in_child = []
    unsubscribe = irsa_session.on_refresh(got_in_child.append)

    def work():
        session = irsa_session.assumed_role_session(session_name="child-%d" % os.getpid())
        session.get_credentials().get_frozen_credentials()
        assert _events.delivered(10)
        return ",".join("%s:%s" % (e.reason, e.session_name.split("-")[0]) for e in got_in_child)

    try:
        assert in_child(work) == "first:child"
    finally:
        unsubscribe()


def test_log_records_of_events_name_no_secret(fake_env, capture, events):
    logging.getLogger("irsa_session").setLevel(logging.DEBUG)
    irsa_session.assumed_role_session().get_credentials().get_frozen_credentials()
    settle(events)
    assert_clean(capture.lines, secrets_of(fake_env))


def test_serve_s_fetches_are_events(fake_env, events):
    import urllib.request

    with irsa_session.serve() as endpoint:
        with open(endpoint.token_file) as handle:
            token = handle.read()
        request = urllib.request.Request(endpoint.url, headers={"Authorization": token})
        for _ in range(3):
            urllib.request.urlopen(request, timeout=10).read()
    seen = settle(events)
    assert [(e.source, e.reason, e.result) for e in seen] == [("IRSA", "first", "ok")]  # three answers, one fetch
    assert len(web_identity_calls(fake_env)) == 1
