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
