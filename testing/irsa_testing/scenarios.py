"""Reliability scenarios, each returning its figures, and helpers for threads, forks and logs.

``tests/test_reliability.py`` asserts on these figures on every row of the
matrix; ``tools/reliability.py`` runs the same functions and prints them.  Each
scenario sets up what it needs (a FakeSTS, token files, clocks) and cleans up.
The only module here that imports irsa_session (and botocore).
"""

__all__ = [
    "TRANSIENT_FAULTS",
    "transient_fault",
    "advisory_outage",
    "burst",
    "rotation",
    "stale_token",
    "simulated_day",
    "fork_during_refresh",
    "run_threads",
    "chain_of",
    "Capture",
]

import datetime
import logging
import os
import random
import select
import subprocess
import sys
import threading
import time

from botocore.exceptions import ClientError

from irsa_session import RefreshError, config, sessions, sts
from irsa_session.credentials import ADVISORY, MANDATORY, Credentials
from irsa_testing import ROLE_ARN
from irsa_testing.clock import FakeClock
from irsa_testing.tokens import make_token, write_token

#: name -> how to make the fake STS misbehave once
TRANSIENT_FAULTS = {
    "Throttling": lambda fake: fake.fail_next(1, "Throttling"),
    "HTTP 500 InternalFailure": lambda fake: fake.fail_next(1, "InternalFailure"),
    "HTTP 503 ServiceUnavailable": lambda fake: fake.fail_next(1, "ServiceUnavailable"),
    "IDPCommunicationError": lambda fake: fake.fail_next(1, "IDPCommunicationError"),
    "InvalidIdentityToken": lambda fake: fake.fail_next(1, "InvalidIdentityToken"),
    "connection dropped": lambda fake: fake.drop_next(1),
    "malformed XML": lambda fake: fake.malformed_next(1),
    "slow answer (1 s)": lambda fake: fake.set_mode(delay=1.0),
    "5 faults in a row": lambda fake: fake.fail_next(5, "Throttling"),
}


class Capture(logging.Handler):
    """Every record from every logger, formatted as a user's handler would."""

    def __init__(self):
        super(Capture, self).__init__(logging.DEBUG)
        self.setFormatter(logging.Formatter("%(name)s %(levelname)s %(message)s"))
        self.lines = []

    def emit(self, record):
        self.lines.append(self.format(record))


def settings_for(fake, token_file, **extra):
    return config.resolve(
        role_arn=ROLE_ARN, token_file=token_file, sts_endpoint_url=fake.url, environ={}, **extra
    )


def transient_fault(fake, folder, name):
    """One transient fault, then success, through a session as an application sees it."""
    fake.reset()
    token_file = write_token(folder)
    sessions._registry.clear()
    TRANSIENT_FAULTS[name](fake)
    session = sessions.assumed_role_session(
        role_arn=ROLE_ARN, token_file=token_file, sts_endpoint_url=fake.url
    )
    started = time.monotonic()
    error = None
    try:
        session.get_credentials().get_frozen_credentials()
    except Exception as err:  # reported as a figure; the test asserts on it
        error = err
    seconds = time.monotonic() - started
    fake.set_mode(delay=0.0)
    return {
        "fault": name,
        "attempts": fake.call_count,
        "seconds": seconds,
        "error": error,
        "bound": retry_bound(fake.call_count, DELAYS.get(name, 0.0)),
    }


#: The answer delay (seconds) of the faults that have one.
DELAYS = {"slow answer (1 s)": 1.0}
#: Time one attempt may take on a loaded 2-core machine, besides the server's delay.
ATTEMPT_ALLOWANCE = 1.0


def retry_bound(attempts, delay=0.0):
    """The longest a fetch of ``attempts`` tries should take: the retry policy's
    longest waits between them, each answer's ``delay``, and a second a try."""
    policy = sts.DEFAULT_RETRY
    waits = sum(min(policy.cap, policy.base * 2 ** n) for n in range(attempts - 1))
    return waits + attempts * (delay + ATTEMPT_ALLOWANCE)


def advisory_outage(fake, folder):
    """STS down from the advisory window on: served, spaced, then a named failure."""
    fake.reset()
    clock = FakeClock()
    settings = settings_for(fake, write_token(folder))
    exchange = sts.Exchange(settings, sleep=lambda seconds: None, monotonic=clock)
    creds = Credentials(
        exchange, clock=clock, advisory_fetch=lambda: exchange(attempts=1), settings=settings
    )
    first = creds.get_frozen_credentials()
    expiry = clock() + 3600
    fake.set_mode(always_fail=("ServiceUnavailable", 503))
    clock.now = expiry - ADVISORY + 1
    before = fake.call_count
    served = 0
    while clock() < expiry - MANDATORY - 1:  # an API call every simulated second
        if creds.get_frozen_credentials() == first:
            served += 1
        clock.tick(1)
    advisory_calls = fake.call_count - before
    clock.now = expiry - MANDATORY + 1
    before = fake.call_count
    error = None
    try:
        creds.get_frozen_credentials()
    except RefreshError as err:
        error = err
    mandatory_calls = fake.call_count - before
    fake.set_mode(always_fail=None)
    return {
        "advisory_seconds": ADVISORY - MANDATORY,
        "served": served,
        "advisory_sts_calls": advisory_calls,
        "mandatory_sts_calls": mandatory_calls,
        "error": error,
    }


def burst(fake, folder, threads=100, processes=16, rate=5):
    """Threads and processes all needing credentials at once from a rate-limited STS."""
    fake.reset()
    fake.set_mode(rate_limit=rate)
    token_file = write_token(folder)
    sessions._registry.clear()
    env = dict(os.environ)
    env.update(
        AWS_ROLE_ARN=ROLE_ARN,
        AWS_WEB_IDENTITY_TOKEN_FILE=token_file,
        AWS_ENDPOINT_URL_STS=fake.url,
    )
    child = (
        "from irsa_session import session\n"
        "print(session.get_credentials().get_frozen_credentials().access_key)\n"
    )
    started = time.monotonic()
    children = [
        subprocess.Popen(
            [sys.executable, "-c", child], env=env, stdout=subprocess.PIPE,
            stderr=subprocess.PIPE, universal_newlines=True,
        )
        for _ in range(processes)
    ]
    session = sessions.assumed_role_session(
        role_arn=ROLE_ARN, token_file=token_file, sts_endpoint_url=fake.url
    )
    results, errors = run_threads(threads, lambda: session.get_credentials().get_frozen_credentials())
    outputs = [process.communicate(timeout=120) for process in children]
    seconds = time.monotonic() - started
    ok_processes = sum(
        1 for process, (out, _) in zip(children, outputs)
        if process.returncode == 0 and out.strip().startswith("ASIA")
    )
    calls = fake.call_count
    throttled = sum(1 for call in fake.calls if call["answered"] == "Throttling")
    fake.set_mode(rate_limit=None)
    return {
        "threads": threads,
        "processes": processes,
        "ok_threads": len(results),
        "ok_processes": ok_processes,
        "errors": errors + [err for _, err in outputs if "Error" in err],
        "sts_calls": calls,
        "throttled": throttled,
        "seconds": seconds,
    }


def rotation(fake, folder, threads=32, seconds=2.0, every=0.003):
    """The kubelet swaps ..data every few ms while threads exchange in a loop."""
    fake.reset()
    written = {}  # token -> (written at, replaced at or None)
    lock = threading.Lock()
    stop = threading.Event()
    serial = [0]

    def publish():
        serial[0] += 1
        stamp = os.path.join(folder, "..%06d" % serial[0])
        os.mkdir(stamp)
        token = make_token(jti=str(serial[0]))
        with open(os.path.join(stamp, "token"), "w") as handle:
            handle.write(token)
        with lock:
            written[token] = (time.time(), None)
        link = os.path.join(folder, "..data_tmp")
        os.symlink(os.path.basename(stamp), link)
        previous = os.path.realpath(os.path.join(folder, "..data")) if serial[0] > 1 else None
        os.rename(link, os.path.join(folder, "..data"))  # the atomic swap
        with lock:
            for old, (at, gone) in written.items():
                if gone is None and old != token:
                    written[old] = (at, time.time())
        if previous:  # the kubelet removes the old directory right away
            os.remove(os.path.join(previous, "token"))
            os.rmdir(previous)

    publish()
    os.symlink(os.path.join("..data", "token"), os.path.join(folder, "token"))

    def kubelet():
        while not stop.wait(every):
            publish()

    writer = threading.Thread(target=kubelet)
    writer.start()
    local = threading.local()  # when this thread's exchange began

    def stamped_client(settings):
        # Each request carries the moment its exchange began, so the token STS
        # received can be held against the tokens that were current from then on.
        client = sts._default_client(settings)

        def stamp(params, **kwargs):
            params["headers"]["X-Irsa-Test-Started"] = repr(local.started)

        client.meta.events.register("before-call.sts.AssumeRoleWithWebIdentity", stamp)
        return client

    exchange = sts.Exchange(settings_for(fake, os.path.join(folder, "token")), client_factory=stamped_client)
    local.started = time.time()
    exchange()  # built once here, so the threads measure exchanges, not client set-up
    deadline = time.monotonic() + seconds
    failures = []

    def refresh_loop():
        count = 0
        while time.monotonic() < deadline:
            local.started = time.time()
            try:
                exchange()
                count += 1
            except Exception as err:  # counted; the test wants none
                failures.append(err)
        return count

    run_threads(threads, refresh_loop)
    stop.set()
    writer.join()
    calls = fake.calls
    # A token sent is stale if the kubelet had replaced it before its exchange began.
    stale = 0
    for call in calls:
        started = float(_header(call, "X-Irsa-Test-Started"))
        at, replaced = written.get(call["token"], (None, None))
        if at is not None and (at > call["time"] or (replaced is not None and replaced < started)):
            stale += 1
    incomplete = sum(1 for call in calls if call["token"] not in written)
    return {
        "rotations": serial[0],
        "sts_calls": len(calls),
        "incomplete_tokens": incomplete,
        "stale_tokens": stale,
        "failures": failures,
    }


def _header(call, name):
    for key, value in call["headers"].items():
        if key.lower() == name.lower():
            return value
    raise AssertionError("the call carried no %s header" % name)


def stale_token(fake, folder):
    """The kubelet stalled: the token on disk has expired."""
    fake.reset()
    fake.set_mode(always_fail=("ExpiredTokenException", None))
    settings = settings_for(fake, write_token(folder))
    error = None
    try:
        sts.Exchange(settings, sleep=lambda seconds: None)()
    except RefreshError as err:
        error = err
    calls = fake.call_count
    fake.set_mode(always_fail=None)
    return {"sts_calls": calls, "error": error}


class _SimulatedSTS(object):
    """An in-process STS client on a simulated clock, failing at random."""

    def __init__(self, clock, failure_rate, seed, life=3600):
        self.clock = clock
        self.failure_rate = failure_rate
        self.random = random.Random(seed)
        self.life = life
        self.calls = 0
        self.failures = 0
        self.expiry_of = {}
        self.lock = threading.Lock()

    def assume_role_with_web_identity(self, **params):
        with self.lock:
            self.calls += 1
            if self.random.random() < self.failure_rate:
                self.failures += 1
                raise ClientError(
                    {"Error": {"Code": "Throttling", "Message": "Rate exceeded"},
                     "ResponseMetadata": {"HTTPStatusCode": 400}},
                    "AssumeRoleWithWebIdentity",
                )
            key = "ASIASIM%013d" % self.calls
            expiry = self.clock() + self.life
            self.expiry_of[key] = expiry
        when = datetime.datetime.fromtimestamp(expiry, datetime.timezone.utc)
        return {"Credentials": {"AccessKeyId": key, "SecretAccessKey": "s" * 40,
                                "SessionToken": "t" * 64, "Expiration": when}}


def simulated_day(folder, threads=64, failure_rate=0.1, seed=7, hours=24):
    """A simulated day of 1 h credentials, threads using them every minute."""
    clock = FakeClock()
    fake = _SimulatedSTS(clock, failure_rate, seed)
    settings = config.resolve(role_arn=ROLE_ARN, token_file=write_token(folder), environ={})
    exchange = sts.Exchange(
        settings, client_factory=lambda _: fake, sleep=clock.tick, rand=random.Random(seed).random,
    )
    creds = Credentials(exchange, clock=clock, advisory_fetch=lambda: exchange(attempts=1))
    steps = hours * 60
    gate = threading.Barrier(threads + 1)
    expired = [0]
    uses = [0]
    errors = []
    count_lock = threading.Lock()

    def worker():
        for _ in range(steps):
            gate.wait()
            try:
                key = creds.get_frozen_credentials().access_key
                stale = fake.expiry_of[key] <= clock()
                with count_lock:
                    uses[0] += 1
                    expired[0] += stale
            except Exception as err:  # counted; the test wants none
                errors.append(err)
            gate.wait()

    pool = [threading.Thread(target=worker) for _ in range(threads)]
    for thread in pool:
        thread.start()
    for _ in range(steps):
        clock.tick(60)
        gate.wait()
        gate.wait()
    for thread in pool:
        thread.join()
    return {
        "uses": uses[0],
        "expired_uses": expired[0],
        "errors": errors,
        "sts_calls": fake.calls,
        "sts_failures": fake.failures,
        "refreshes": fake.calls - fake.failures,
    }


def fork_during_refresh(fake, folder):
    """Fork while another thread's STS call is in flight: the child must not hang."""
    fake.reset()
    fake.set_mode(delay=1.0)
    settings = settings_for(fake, write_token(folder))
    creds = Credentials(sts.Exchange(settings), settings=settings)
    flight = threading.Thread(target=creds.get_frozen_credentials)
    flight.start()
    while fake.call_count == 0:
        time.sleep(0.01)
    read_end, write_end = os.pipe()
    started = time.monotonic()
    pid = os.fork()
    if pid == 0:
        try:
            os.write(write_end, creds.get_frozen_credentials().access_key.encode())
        finally:
            os._exit(0)
    os.close(write_end)
    ready, _, _ = select.select([read_end], [], [], 20)
    child_seconds = time.monotonic() - started
    if not ready:
        os.kill(pid, 9)
    os.waitpid(pid, 0)
    child_key = os.read(read_end, 100).decode() if ready else None
    os.close(read_end)
    flight.join(20)
    parent_key = creds.get_frozen_credentials().access_key
    fake.set_mode(delay=0.0)
    return {"child_key": child_key, "parent_key": parent_key, "child_seconds": child_seconds}


def run_threads(count, target):
    """Start ``count`` threads at once on ``target``; its results and errors."""
    results, errors = [], []
    gate = threading.Barrier(count)

    def work():
        gate.wait()
        try:
            results.append(target())
        except Exception as err:  # collected for the caller
            errors.append(err)

    pool = [threading.Thread(target=work) for _ in range(count)]
    for thread in pool:
        thread.start()
    for thread in pool:
        thread.join(120)
    return results, errors


def chain_of(err):
    """Every exception reachable from ``err`` through __cause__ and __context__."""
    found, todo = [], [err]
    while todo:
        each = todo.pop()
        if each is None or any(each is seen for seen in found):
            continue
        found.append(each)
        todo.extend([each.__cause__, each.__context__])
    return found
