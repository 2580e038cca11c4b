"""OpenTelemetry metrics for every credential fetch, when ``opentelemetry-api`` is installed.

The instruments come from the application's MeterProvider (the global one, set
before or after: the API's proxy meter follows it), under the meter
``irsa_session``.  Attributes: ``irsa_session.source``, ``irsa_session.reason``,
``irsa_session.result`` and ``aws.iam.role.arn`` (absent where the source names no role).

=========================================== ========= ===================================
instrument                                  unit      what
=========================================== ========= ===================================
``irsa_session.credentials.expiry``         ``s``     gauge: the newest credentials' expiry,
                                                      seconds since the epoch, by source
                                                      and role (alert on ``expiry - now``)
``irsa_session.credentials.fetches``        ``{fetch}`` counter: fetches, by source, reason
                                                      and result
``irsa_session.credentials.fetch.duration`` ``s``     histogram: how long each fetch took
``irsa_session.credentials.fetch.attempts`` ``{attempt}`` counter: requests made to STS or
                                                      the agent
``irsa_session.node_cache.hits``            ``{hit}`` counter: fetches the node cache answered
=========================================== ========= ===================================

Imported at the first fetch, never at the package's import.
"""

import threading

from ._version import __version__

__all__ = ["recorder", "METER", "NAMES"]

METER = "irsa_session"
NAMES = (
    "irsa_session.credentials.expiry",
    "irsa_session.credentials.fetches",
    "irsa_session.credentials.fetch.duration",
    "irsa_session.credentials.fetch.attempts",
    "irsa_session.node_cache.hits",
)
_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0)  # seconds


def recorder(provider=None):
    """A function that records an event as metrics, or None without opentelemetry-api.

    ``provider``: a MeterProvider (default: the global one).
    """
    try:
        from opentelemetry import metrics
    except ImportError:
        return None
    meter = (provider or metrics.get_meter_provider()).get_meter(METER, __version__)
    expiries = {}  # attributes (as a sorted tuple) -> the newest expiry
    lock = threading.Lock()

    def observe(options):
        with lock:
            held = list(expiries.items())
        return [metrics.Observation(expiry, dict(attributes)) for attributes, expiry in held]

    meter.create_observable_gauge(
        NAMES[0], callbacks=[observe], unit="s",
        description="When the newest credentials expire, in seconds since the epoch",
    )
    fetches = meter.create_counter(
        NAMES[1], unit="{fetch}", description="Credential fetches, by source, reason and result")
    duration = _histogram(meter, NAMES[2])
    attempts = meter.create_counter(
        NAMES[3], unit="{attempt}", description="Requests made to STS or the agent for credentials")
    hits = meter.create_counter(
        NAMES[4], unit="{hit}", description="Credential fetches the node cache answered")

    def record(event):
        role = {"aws.iam.role.arn": event.role_arn} if event.role_arn else {}
        where = dict(role, **{"irsa_session.source": event.source})
        full = dict(where, **{"irsa_session.reason": event.reason, "irsa_session.result": event.result})
        fetches.add(1, full)
        duration.record(event.duration, full)
        if event.attempts:
            attempts.add(event.attempts, full)
        if event.source == "node cache":
            hits.add(1, where)
        if event.expiry is not None:
            with lock:
                expiries[tuple(sorted(where.items()))] = event.expiry

    return record


def _histogram(meter, name):
    description = "How long each credential fetch took, retries included"
    try:  # bucket advice: opentelemetry-api 1.23 and later
        return meter.create_histogram(
            name, unit="s", description=description,
            explicit_bucket_boundaries_advisory=list(_BUCKETS),
        )
    except TypeError:
        return meter.create_histogram(name, unit="s", description=description)
