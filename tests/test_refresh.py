"""The refresher on its own: plain Python, a fake clock, no botocore."""

import os
import random

import pytest

from irsa_session import _refresh, config, sessions
from irsa_session.source import Issued
from irsa_testing import ROLE_ARN
from irsa_testing.clock import FakeClock

ADVISORY, MANDATORY = _refresh.ADVISORY, _refresh.MANDATORY
SPREAD = (ADVISORY - MANDATORY) * _refresh.JITTER_SHARE  # 100 s for 1 h credentials


def issuer(clock, life=3600):
    count = [0]

    def fetch():
        count[0] += 1
        return Issued("ASIA%016d" % count[0], "s" * 40, "t" * 40, clock() + life, None)

    fetch.count = count
    return fetch


def test_without_jitter_refresh_starts_at_the_advisory_window():
    clock = FakeClock()
    refresher = _refresh.Refresher(issuer(clock), clock=clock)
    refresher.get()
    assert refresher.refresh_at == refresher.expiry - ADVISORY


@pytest.mark.parametrize("draw", [0.0, 0.5, 0.999])
def test_jitter_moves_the_start_within_the_first_third_of_the_window(draw):
    clock = FakeClock()
    fetch = issuer(clock)
    refresher = _refresh.Refresher(fetch, clock=clock, jitter=lambda: draw)
    first = refresher.get()
    start = refresher.expiry - ADVISORY + draw * SPREAD
    assert refresher.refresh_at == pytest.approx(start)
    clock.now = start - 1
    assert refresher.get() is first and fetch.count[0] == 1
    clock.now = start + 1
    assert refresher.get() is not first and fetch.count[0] == 2


def test_a_fleet_started_together_spreads_its_refreshes():
    clock = FakeClock()
    rng = random.Random(7)
    starts = []
    for _ in range(200):
        refresher = _refresh.Refresher(issuer(clock), clock=clock, jitter=rng.random)
        refresher.get()
        starts.append(refresher.refresh_at - (refresher.expiry - ADVISORY))
    assert min(starts) >= 0 and max(starts) < SPREAD
    assert len(set(round(start) for start in starts)) > 50  # not in step
    assert max(starts) - min(starts) > 0.9 * SPREAD
    # Every start leaves most of the advisory window for retries before the mandatory one.
    assert ADVISORY - max(starts) - MANDATORY >= (ADVISORY - MANDATORY) * 2 / 3 - 1


def test_jitter_is_drawn_anew_for_each_set_of_credentials():
    clock = FakeClock()
    draws = iter([0.1, 0.9])
    refresher = _refresh.Refresher(issuer(clock), clock=clock, jitter=lambda: next(draws))
    refresher.get()
    first = refresher.refresh_at - (refresher.expiry - ADVISORY)
    clock.now = refresher.refresh_at + 1
    refresher.get()
    second = refresher.refresh_at - (refresher.expiry - ADVISORY)
    assert (first, second) == (pytest.approx(0.1 * SPREAD), pytest.approx(0.9 * SPREAD))


def test_short_lived_credentials_scale_the_spread_too():
    clock = FakeClock()
    refresher = _refresh.Refresher(issuer(clock, life=120), clock=clock, jitter=lambda: 0.999)
    refresher.get()
    advisory, mandatory = _refresh.windows(120)
    assert refresher.refresh_at < refresher.expiry - mandatory
    assert refresher.refresh_at == pytest.approx(
        refresher.expiry - advisory + 0.999 * (advisory - mandatory) * _refresh.JITTER_SHARE
    )


def test_the_library_s_credentials_refresh_with_jitter(tmp_path):
    token = tmp_path / "token"
    token.write_text("header.payload.signature")
    settings = config.resolve(role_arn=ROLE_ARN, token_file=str(token), region_name="us-east-1")
    credentials = sessions._credentials_for(settings)
    assert credentials._refresher._jitter is random.random


@pytest.mark.skipif(not hasattr(os, "fork"), reason="needs os.fork")
def test_forked_processes_draw_different_moments(tmp_path):
    """The library's own credentials, refreshed in a parent and in its forked child
    for the same expiry, start their advisory refresh at different moments."""
    from irsa_testing.processes import in_child

    token = tmp_path / "token"
    token.write_text("header.payload.signature")
    settings = config.resolve(role_arn=ROLE_ARN, token_file=str(token), region_name="us-east-1")
    credentials = sessions._credentials_for(settings)
    expiry = 4102444800.0  # the same answer in both processes

    def fetch(attempts=None):
        return Issued("ASIA%016d" % os.getpid(), "s" * 40, "t" * 40, expiry, None)

    refresher = credentials._refresher
    refresher.fetch = refresher.advisory_fetch = fetch

    def moment():
        credentials.get_frozen_credentials()
        return repr(refresher.refresh_at)

    child = in_child(moment)
    parent = moment()
    assert child is not None and not child.startswith("error"), child
    assert float(child) != float(parent)


def test_a_refresher_refuses_to_pickle():
    import pickle

    clock = FakeClock()
    refresher = _refresh.Refresher(issuer(clock), clock=clock)
    refresher.get()
    with pytest.raises(TypeError, match="not pickled"):
        pickle.dumps(refresher)


def test_credentials_that_arrive_expired_are_an_error_and_are_not_fetched_at_every_use():
    from irsa_session import RefreshError

    clock = FakeClock()
    calls = []

    def fetch():
        calls.append(clock())
        return Issued("ASIA%016d" % len(calls), "s" * 40, "t" * 40, clock() - 120, None)

    refresher = _refresh.Refresher(fetch, clock=clock)
    errors = []
    for _ in range(80):
        with pytest.raises(RefreshError) as caught:
            refresher.get()
        errors.append(caught.value)
    assert len(calls) == 1  # one fetch, then the cooldown
    text = str(errors[0])
    assert "already expired when they arrived" in text and "clock" in text and "irsa-session doctor" in text
    assert all(str(each) == text for each in errors)
    clock.tick(61)
    with pytest.raises(RefreshError):
        refresher.get()
    assert len(calls) == 2  # after the cooldown, one more try


def test_a_session_whose_source_hands_out_expired_credentials_says_so(fake_env):
    from irsa_session import RefreshError, assumed_role_session

    fake_env.set_mode(duration=-300, honor_duration=False)
    credentials = assumed_role_session().get_credentials()
    for _ in range(20):
        with pytest.raises(RefreshError) as caught:
            credentials.get_frozen_credentials()
    assert fake_env.call_count == 1
    assert "already expired when they arrived" in str(caught.value)


def test_get_with_life_refreshes_once_for_a_caller_that_needs_longer():
    clock = FakeClock()
    fetch = issuer(clock, life=3600)
    refresher = _refresh.Refresher(fetch, clock=clock)
    first = refresher.get()
    assert refresher.get_with_life(1800) is first  # a full hour left
    clock.tick(1900)  # 1700 s left: not yet due, but too short for a half-hour stream
    assert refresher.get() is first
    second = refresher.get_with_life(1800)
    assert second is not first and fetch.count[0] == 2
    assert refresher.get_with_life(1800) is second and fetch.count[0] == 2
    clock.tick(100)  # 3500 s of 3600 left
    for _ in range(3):  # longer than credentials live: fresh ones would not help
        assert refresher.get_with_life(7200) is second
    assert fetch.count[0] == 2
    clock.tick(400)  # 3100 s left: less than nine tenths of their life
    assert refresher.get_with_life(7200) is not second and fetch.count[0] == 3
