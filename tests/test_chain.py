"""Role chaining: AssumeRole signed with the source's live credentials, both refreshing.

Every test runs against ChainSTS (irsa_testing/chainsts.py), which answers AssumeRole only
for a request whose SigV4 signature verifies with the secret of a live key it
issued, and only for a principal the target role trusts: a chain that signed
with stale, foreign or no credentials fails there.
"""

import json
import logging
import os
import pickle
import socket
import threading
import time
import xml.etree.ElementTree as ET

import boto3
import boto3.session
import botocore.session
import pytest

import irsa_session
from irsa_session import ConfigError, IrsaError, RefreshError, _aio, chain, config, sessions, sts
from irsa_session.credentials import Credentials
from irsa_testing import ROLE_ARN, SUBJECT
from irsa_testing.agent import FakeAgent
from irsa_testing.chainsts import ChainSTS, sign, signer
from irsa_testing.leaks import assert_clean, secrets_of
from irsa_testing.processes import in_child, in_flight, lines_of
from irsa_testing.scenarios import chain_of
from irsa_testing.servers import send
from irsa_testing.tokens import make_token

TARGET = "arn:aws:iam::444455556666:role/cross/reader"
SECOND = "arn:aws:iam::777788889999:role/warehouse"
GUARDED = "arn:aws:iam::444455556666:role/vendor-access"
UNTRUSTED = "arn:aws:iam::444455556666:role/nobody"
EXTERNAL_ID = "team-a-7f3c"
SESSION_NAME = "notebook-7"
SOURCE_SESSION_ARN = "arn:aws:sts::111122223333:assumed-role/data-reader/" + SESSION_NAME
POD_ROLE = "arn:aws:iam::111122223333:role/kf-team-a-pod"
POD_SESSION_ARN = "arn:aws:sts::111122223333:assumed-role/kf-team-a-pod/eks-cluster-nb-7-3f2a9c"
WI, AR = "AssumeRoleWithWebIdentity", "AssumeRole"
FAST = sts.RetryPolicy(attempts=6, base=0.01, cap=0.08)
NS = {"sts": "https://sts.amazonaws.com/doc/2011-06-15/"}
TRUST = {
    TARGET: {"principals": [ROLE_ARN, POD_ROLE]},
    SECOND: {"principals": [TARGET]},
    GUARDED: {"principals": [ROLE_ARN], "external_id": EXTERNAL_ID},
}


@pytest.fixture(scope="module")
def server():
    with ChainSTS(trust=TRUST) as running:
        yield running


@pytest.fixture
def fake(server):
    """The module's ChainSTS, as good as new."""
    server.reset()
    yield server
    server.reset()


@pytest.fixture
def chain_env(fake, irsa_env, monkeypatch):
    """The pod's IRSA variables, STS pointed at the chain-aware fake; returns it."""
    monkeypatch.setenv("AWS_ENDPOINT_URL_STS", fake.url)
    monkeypatch.setenv("AWS_ROLE_SESSION_NAME", SESSION_NAME)
    return fake


def frozen(session):
    return session.get_credentials().get_frozen_credentials()


def calls_of(fake, action):
    return [call for call in fake.calls if call["action"] == action]


def post(url, body, headers):
    return send("POST", url, data=body, headers=headers, timeout=5)


def error_code(body):
    return ET.fromstring(body).findtext("sts:Error/sts:Code", namespaces=NS)


def assume_with(fake, creds, role=TARGET, **changes):
    """POST AssumeRole signed with ``creds`` (an issued record); return (status, code or None)."""
    params = {"Action": AR, "Version": "2011-06-15", "RoleArn": role, "RoleSessionName": "manual"}
    body, headers = sign(
        fake.url, params, changes.get("access_key", creds["access_key"]),
        changes.get("secret_key", creds["secret_key"]), creds["session_token"],
    )
    if "body" in changes:
        body = changes["body"]
    status, answer = post(fake.url, body, headers)
    return status, (error_code(answer) if status != 200 else None)


def clocked(clock, fake, target=TARGET, sleeps=None, **settings):
    """(source, chained credentials), both on ``clock``, as assume_role() builds them."""
    fake.clock = clock
    resolved = config.resolve()
    source_creds = Credentials(
        sts.Exchange(resolved, retry=FAST, sleep=lambda seconds: None), clock=clock, settings=resolved
    )
    source = sessions.Session(resolved, source_creds, region_name=resolved.region_name)
    hop = chain.resolve(target, source, **settings)
    creds = chain.ChainCredentials.build(
        hop, source, clock=clock, retry=FAST,
        sleep=(sleeps.append if sleeps is not None else lambda seconds: None), rand=lambda: 0.5,
    )
    return source, creds


def test_the_signature_is_the_one_api_md_states():
    import inspect

    for verb in (chain.assume_role, chain.install):
        params = inspect.signature(verb).parameters
        assert list(params) == [
            "role_arn", "source", "external_id", "session_name", "duration_seconds",
            "policy", "policy_arns", "region_name", "sts_endpoint_url",
        ]
        assert [p.kind for p in params.values()][1:] == [inspect.Parameter.KEYWORD_ONLY] * 8
        assert all(p.default is None for p in list(params.values())[1:])


# -- the fake itself: a proof that cannot pass by accident ------------------------------


def test_the_fake_accepts_only_live_keys_it_issued_with_valid_signatures(chain_env, clock):
    frozen(irsa_session.session)
    live = chain_env.issued[-1]
    assert assume_with(chain_env, live) == (200, None)
    assert chain_env.issued[-1]["signed_by"] == live["access_key"]
    forged = dict(live, secret_key=live["secret_key"][::-1])
    assert assume_with(chain_env, forged) == (403, "SignatureDoesNotMatch")
    assert assume_with(chain_env, live, access_key="ASIAUNKNOWNKEY000000") == (403, "InvalidClientTokenId")
    tampered = b"Action=AssumeRole&Version=2011-06-15&RoleArn=" + SECOND.encode() + b"&RoleSessionName=manual"
    assert assume_with(chain_env, live, body=tampered) == (403, "SignatureDoesNotMatch")
    assert assume_with(chain_env, live, role=UNTRUSTED) == (403, "AccessDenied")
    chain_env.clock = lambda: live["expiration"] + 1
    assert assume_with(chain_env, live) == (400, "ExpiredToken")


# -- deferred, shared, signed by the source ----------------------------------------------


def test_nothing_is_fetched_or_read_until_credentials_are_needed(chain_env, irsa_env):
    os.rename(irsa_env, irsa_env + ".away")  # reading it now would raise TokenFileError
    session = chain.assume_role(TARGET)
    assert isinstance(session, sessions.Session) and isinstance(session, boto3.session.Session)
    session.client("s3")
    repr(session), pickle.dumps(session)
    assert isinstance(session.get_credentials(), chain.ChainCredentials)
    assert chain_env.call_count == 0
    os.rename(irsa_env + ".away", irsa_env)
    frozen(session)
    assert chain_env.actions() == [WI, AR]


def test_assume_role_is_signed_with_the_sources_credentials(chain_env):
    session = chain.assume_role(TARGET)
    mine = frozen(session)
    source_key = frozen(irsa_session.session).access_key
    assert chain_env.actions() == [WI, AR]  # the source's own credentials were reused
    web, assumed = chain_env.issued
    assert web["access_key"] == source_key and web["role_arn"] == ROLE_ARN
    assert signer(calls_of(chain_env, AR)[0]) == source_key
    assert calls_of(chain_env, AR)[0]["answered"] == "ok"
    assert (assumed["access_key"], assumed["signed_by"]) == (mine.access_key, source_key)
    assert mine.secret_key == assumed["secret_key"] and mine.token == assumed["session_token"]
    params = calls_of(chain_env, AR)[0]["params"]
    assert (params["RoleArn"], params["RoleSessionName"]) == (TARGET, SESSION_NAME)
    assert "DurationSeconds" not in params and "ExternalId" not in params
    assert session.region_name == "us-west-2"
    assert session.source is irsa_session.session


def test_the_region_comes_from_the_argument_the_environment_then_the_source(chain_env, monkeypatch):
    monkeypatch.delenv("AWS_REGION")
    monkeypatch.delenv("AWS_DEFAULT_REGION")
    source = irsa_session.assumed_role_session(region_name="eu-west-1")
    assert chain.assume_role(TARGET, source=source).region_name == "eu-west-1"
    assert chain.assume_role(TARGET, source=source, region_name="ap-south-1").region_name == "ap-south-1"
    frozen(chain.assume_role(TARGET, source=source))
    scope = calls_of(chain_env, AR)[-1]["headers"]["Authorization"].split("Credential=")[1].split(",")[0]
    assert scope.split("/")[2:4] == ["eu-west-1", "sts"]  # signed for the session's region
    monkeypatch.setenv("AWS_DEFAULT_REGION", "ca-central-1")
    assert chain.assume_role(TARGET, source=source).region_name == "ca-central-1"


def test_same_settings_give_the_same_session_and_one_call(chain_env):
    first = chain.assume_role(TARGET)
    for _ in range(50):
        assert chain.assume_role(TARGET) is first
    assert chain.assume_role(TARGET, source=irsa_session.session) is first
    assert chain.assume_role(TARGET, region_name="us-west-2") is first
    assert chain.assume_role(TARGET, session_name="other") is not first
    assert chain.assume_role(GUARDED, external_id=EXTERNAL_ID) is not first
    frozen(first)
    frozen(chain.assume_role(TARGET))
    assert chain_env.actions() == [WI, AR]
    sessions._registry.clear()  # what a test harness (or a fresh process) starts from
    assert chain.assume_role(TARGET) is not first


def test_a_burst_of_threads_makes_one_call_per_hop(chain_env):
    chain_env.set_mode(delay=0.3)
    session = chain.assume_role(TARGET)
    barrier = threading.Barrier(16)
    keys, errors = [], []

    def work():
        barrier.wait()
        try:
            keys.append(frozen(session).access_key)
        except Exception as err:  # collected for the assertion
            errors.append(err)

    threads = [threading.Thread(target=work) for _ in range(16)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(60)
    assert errors == []
    assert len(keys) == 16 and len(set(keys)) == 1
    assert chain_env.actions() == [WI, AR]


# -- refresh ------------------------------------------------------------------------------


def test_short_lived_credentials_rotate_on_both_hops(chain_env):
    """Real time: 3-second credentials on both hops, through the public API."""
    chain_env.set_mode(duration=3, honor_duration=False)
    session = chain.assume_role(TARGET)
    first = frozen(session)
    web = chain_env.issued[0]
    time.sleep(max(web["expiration"], chain_env.issued[1]["expiration"]) - time.time() + 0.1)
    assert assume_with(chain_env, web)[1] == "ExpiredToken"  # signing with it now fails
    second = frozen(session)
    assert chain_env.actions() == [WI, AR, AR, WI, AR]  # the manual AssumeRole above, then a refresh
    new_web = chain_env.issued[-2]
    assert new_web["role_arn"] == ROLE_ARN and new_web["access_key"] != web["access_key"]
    assert signer(chain_env.calls[-1]) == new_web["access_key"]
    assert chain_env.calls[-1]["answered"] == "ok"
    assert second.access_key == chain_env.issued[-1]["access_key"] != first.access_key
    assert frozen(irsa_session.session).access_key == new_web["access_key"]


def test_the_chain_refreshes_alone_while_its_source_is_fresh(chain_env, clock):
    chain_env.set_mode(assume_role_duration=900)  # the source's live 3600 s
    source, creds = clocked(clock, chain_env)
    first = creds.get_frozen_credentials()
    source_key = chain_env.issued[0]["access_key"]
    clock.tick(900 - 900 / 4 + 1)  # the chain's advisory window; the source's far off
    second = creds.get_frozen_credentials()
    assert chain_env.actions() == [WI, AR, AR]
    assert [signer(call) for call in calls_of(chain_env, AR)] == [source_key, source_key]
    assert second.access_key != first.access_key
    assert creds.expires_at.timestamp() == pytest.approx(clock() + 900, abs=2)


def test_the_source_refreshes_on_its_own_schedule_and_the_chain_signs_with_the_new_one(chain_env, clock):
    chain_env.set_mode(duration=2000, honor_duration=False, assume_role_duration=3600)
    source, creds = clocked(clock, chain_env)
    first = creds.get_frozen_credentials()
    old_source = chain_env.issued[0]
    clock.tick(2001)  # the source has expired; the chain is fresh
    assert creds.get_frozen_credentials() is first
    assert chain_env.actions() == [WI, AR]  # a fresh chain does not touch its source
    new_source = frozen(source)
    assert chain_env.actions() == [WI, AR, WI]
    clock.tick(700)  # the chain's advisory window (3600 - 900)
    assert creds.get_frozen_credentials().access_key != first.access_key
    assert chain_env.actions() == [WI, AR, WI, AR]
    assert signer(chain_env.calls[-1]) == new_source.access_key != old_source["access_key"]
    assert assume_with(chain_env, old_source)[1] == "ExpiredToken"


def test_a_failed_advisory_refresh_keeps_serving_and_a_mandatory_one_raises(chain_env, clock, caplog):
    chain_env.set_mode(duration=43200, honor_duration=False, assume_role_duration=3600)
    sleeps = []
    source, creds = clocked(clock, chain_env, sleeps=sleeps)
    first = creds.get_frozen_credentials()
    chain_env.set_mode(always_fail="Throttling")
    clock.tick(3600 - 900 + 1)
    with caplog.at_level(logging.WARNING, logger="irsa_session"):
        assert creds.get_frozen_credentials() is first
        assert creds.get_frozen_credentials() is first  # within the cooldown: no new try
    assert chain_env.actions() == [WI, AR, AR]
    assert any("advisory refresh" in record.getMessage() for record in caplog.records)
    clock.tick(301)  # mandatory
    with pytest.raises(RefreshError) as caught:
        creds.get_frozen_credentials()
    assert chain_env.actions() == [WI, AR, AR] + [AR] * FAST.attempts
    assert (caught.value.code, caught.value.attempts) == ("Throttling", FAST.attempts)
    assert "kept failing AssumeRole of role %s after 6 attempts" % TARGET in str(caught.value)
    assert len(sleeps) == FAST.attempts - 1


# -- retries and errors -------------------------------------------------------------------


@pytest.mark.parametrize(
    "fault",
    [
        lambda fake: fake.fail_next(2, "Throttling"),
        lambda fake: fake.fail_next(2, "InternalFailure"),
        lambda fake: fake.fail_next(2, "ServiceUnavailable"),
        lambda fake: fake.fail_next(2, "SlowDown", status=429),
        lambda fake: fake.drop_next(2),
        lambda fake: fake.malformed_next(2),
    ],
    ids=["Throttling", "500", "503", "429", "connection-dropped", "malformed"],
)
def test_transient_faults_of_assume_role_are_retried(chain_env, clock, fault):
    sleeps = []
    source, creds = clocked(clock, chain_env, sleeps=sleeps)
    frozen(source)
    fault(chain_env)
    assert creds.get_frozen_credentials().access_key == chain_env.issued[-1]["access_key"]
    assert chain_env.actions() == [WI, AR, AR, AR]
    assert sleeps == [FAST.delay(1, lambda: 0.5), FAST.delay(2, lambda: 0.5)]


def test_access_denied_is_not_retried_and_explains_the_trust_policy(chain_env):
    with pytest.raises(RefreshError) as caught:
        frozen(chain.assume_role(UNTRUSTED))
    err = caught.value
    assert (err.code, err.attempts) == ("AccessDenied", 1)
    assert chain_env.actions() == [WI, AR]
    text = str(err)
    assert "STS denied AssumeRole of role %s" % UNTRUSTED in text
    assert "signed by the source's session %s (role %s" % (SOURCE_SESSION_ARN, ROLE_ARN) in text
    assert 'Principal {"AWS": "%s"}' % ROLE_ARN in text
    assert "pass external_id=" in text
    assert "sts:AssumeRole on %s" % UNTRUSTED in text


def test_access_denied_names_the_external_id_condition(chain_env):
    with pytest.raises(RefreshError) as caught:
        frozen(chain.assume_role(GUARDED, external_id="wrong-id"))
    text = str(caught.value)
    assert 'StringEquals sts:ExternalId = "wrong-id"' in text
    assert '"Condition": {"StringEquals": {"sts:ExternalId": "wrong-id"}}' in text
    assert SOURCE_SESSION_ARN in text and ROLE_ARN in text
    granted = chain.assume_role(GUARDED, external_id=EXTERNAL_ID)
    assert frozen(granted).access_key == chain_env.issued[-1]["access_key"]
    assert calls_of(chain_env, AR)[-1]["params"]["ExternalId"] == EXTERNAL_ID
    with pytest.raises(RefreshError):
        frozen(chain.assume_role(GUARDED))  # no external id: denied too


def test_access_denied_for_a_default_chain_source_asks_sts_who_signed(fake, token_file, monkeypatch):
    web = sts.Exchange(
        config.resolve(role_arn=ROLE_ARN, token_file=token_file, session_name="laptop",
                       sts_endpoint_url=fake.url, environ={})
    )()
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", web.access_key)
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", web.secret_key)
    monkeypatch.setenv("AWS_SESSION_TOKEN", web.token)
    monkeypatch.setenv("AWS_ENDPOINT_URL_STS", fake.url)
    assert irsa_session.session._irsa_settings is None  # no IRSA here: boto3's default chain
    assert frozen(chain.assume_role(TARGET)).access_key == fake.issued[-1]["access_key"]
    assert fake.issued[-1]["signed_by"] == web.access_key
    with pytest.raises(RefreshError) as caught:
        frozen(chain.assume_role(UNTRUSTED))
    text = str(caught.value)
    assert "arn:aws:sts::111122223333:assumed-role/data-reader/laptop" in text
    assert "from GetCallerIdentity" in text
    assert 'Principal {"AWS": "arn:aws:iam::111122223333:role/data-reader"}' in text
    assert fake.actions()[-2:] == [AR, "GetCallerIdentity"]


def test_the_sources_errors_surface_as_they_are(chain_env):
    chain_env.fail_next(1, "AccessDenied")  # the source's AssumeRoleWithWebIdentity
    with pytest.raises(RefreshError) as caught:
        frozen(chain.assume_role(TARGET))
    text = str(caught.value)
    assert caught.value.code == "AccessDenied"
    assert "STS denied AssumeRoleWithWebIdentity for role %s" % ROLE_ARN in text
    assert SUBJECT in text  # the source's own explanation: the token's claims
    assert "AssumeRole of role" not in text
    assert chain_env.actions() == [WI]  # neither retried nor followed by an AssumeRole


def test_credentials_the_signer_refused_are_explained(chain_env, clock):
    source, creds = clocked(clock, chain_env)
    frozen(source)
    chain_env.clock = lambda: clock() + 7200  # STS thinks the source's key has expired
    with pytest.raises(RefreshError) as caught:
        creds.get_frozen_credentials()
    assert caught.value.code == "ExpiredToken"
    assert "refused the source credentials that signed AssumeRole of role %s" % TARGET in str(caught.value)
    assert "clock" in str(caught.value)
    assert chain_env.actions() == [WI, AR]


def test_values_sts_could_not_have_issued_are_refused(chain_env):
    session = chain.assume_role(TARGET)
    frozen(irsa_session.session)
    chain_env.odd_values_next(1, secret_key="abc\ndef" * 4)
    with pytest.raises(RefreshError) as caught:
        frozen(session)
    assert "AssumeRole for role %s with a secret access key that is not" % TARGET in str(caught.value)


# -- settings -----------------------------------------------------------------------------


@pytest.mark.parametrize("duration", [3601, 7200, 43200])
def test_a_duration_above_one_hour_is_refused_for_a_chain(chain_env, duration):
    with pytest.raises(ConfigError) as caught:
        chain.assume_role(TARGET, duration_seconds=duration)
    text = str(caught.value)
    assert "duration_seconds=%d" % duration in text
    assert "role chaining" in text and "3600 s (1 hour)" in text
    assert chain_env.call_count == 0


@pytest.mark.parametrize("duration", [899, 0, -1, "3600", 3600.0, True])
def test_a_duration_below_900_or_not_an_int_is_refused(chain_env, duration):
    with pytest.raises(ConfigError) as caught:
        chain.assume_role(TARGET, duration_seconds=duration)
    assert "duration_seconds=%r" % (duration,) in str(caught.value)
    assert "900 to 3600" in str(caught.value)


def test_durations_in_range_are_sent(chain_env):
    for duration in (900, 3600):
        frozen(chain.assume_role(TARGET, duration_seconds=duration))
        assert calls_of(chain_env, AR)[-1]["params"]["DurationSeconds"] == str(duration)


def test_policy_and_policy_arns_are_sent_under_the_signature(chain_env):
    policy = json.dumps({"Version": "2012-10-17", "Statement": [{"Effect": "Allow", "Action": "s3:Get*", "Resource": "*"}]})
    arns = ["arn:aws:iam::aws:policy/ReadOnlyAccess", "arn:aws:iam::444455556666:policy/team/extra"]
    frozen(chain.assume_role(TARGET, policy=policy, policy_arns=arns))
    call = calls_of(chain_env, AR)[-1]
    assert call["answered"] == "ok"  # on botocore 1.8 too, where the ARNs are added as form fields
    assert call["params"]["Policy"] == policy
    assert [call["params"]["PolicyArns.member.%d.arn" % n] for n in (1, 2)] == arns


@pytest.mark.parametrize(
    "arguments, named",
    [
        (dict(role_arn="arn:aws:s3:::bucket"), "role_arn"),
        (dict(role_arn=""), "role_arn"),
        (dict(role_arn=None), "role_arn"),
        (dict(role_arn=" " + TARGET), "role_arn"),
        (dict(role_arn=TARGET + "\n"), "role_arn"),
        (dict(external_id=""), "external_id"),
        (dict(external_id="x"), "external_id"),
        (dict(external_id="has space"), "external_id"),
        (dict(external_id="y" * 1225), "external_id"),
        (dict(external_id=1234), "external_id"),
        (dict(policy="{not json"), "policy"),
        (dict(policy={"Version": "2012-10-17"}), "policy"),
        (dict(policy_arns="arn:aws:iam::aws:policy/ReadOnlyAccess"), "policy_arns"),
        (dict(policy_arns=["ReadOnlyAccess"]), "policy_arns"),
        (dict(region_name="Not A Region"), "region_name"),
        (dict(sts_endpoint_url="http://sts.example.com"), "sts_endpoint_url"),
        (dict(source="a plain boto3 session"), "source"),
        (dict(session_name=42), "session_name"),
    ],
)
def test_invalid_arguments_are_config_errors_naming_them(chain_env, arguments, named):
    arguments = dict(arguments)
    role_arn = arguments.pop("role_arn", TARGET)
    if arguments.get("source") == "a plain boto3 session":
        arguments["source"] = boto3.session.Session()
    with pytest.raises(ConfigError) as caught:
        chain.assume_role(role_arn, **arguments)
    assert named in str(caught.value)
    assert chain_env.call_count == 0


def test_an_eks_pod_identity_source_signs_the_chain(fake, tmp_path, monkeypatch):
    token = tmp_path / "eks-pod-identity-token"
    token.write_text(make_token(aud=["pods.eks.amazonaws.com"]) + "\n")
    with FakeAgent(expect_token=lambda: token.read_text().strip()) as agent:
        monkeypatch.setenv("AWS_CONTAINER_CREDENTIALS_FULL_URI", agent.url)
        monkeypatch.setenv("AWS_CONTAINER_AUTHORIZATION_TOKEN_FILE", str(token))
        monkeypatch.setenv("AWS_REGION", "us-west-2")
        monkeypatch.setenv("AWS_ENDPOINT_URL_STS", fake.url)
        source = irsa_session.session  # no IRSA in this pod: EKS Pod Identity
        assert isinstance(source._irsa_settings, config.PodIdentitySettings)
        session = chain.assume_role(TARGET)
        assert session.source is source
        assert agent.call_count == 0 and fake.call_count == 0  # deferred
        pod = frozen(source)
        given = agent.issued[-1]
        fake.register(given["access_key"], given["secret_key"], given["session_token"],
                      given["expiration"], POD_SESSION_ARN, POD_ROLE)
        assert frozen(session).access_key == fake.issued[-1]["access_key"]
        assert signer(calls_of(fake, AR)[-1]) == pod.access_key
        assert agent.call_count == 1
        with pytest.raises(RefreshError) as caught:
            frozen(chain.assume_role(UNTRUSTED))
        text = str(caught.value)
        assert "signed by the source's session %s" % POD_SESSION_ARN in text
        assert 'Principal {"AWS": "%s"}' % POD_ROLE in text and "from GetCallerIdentity" in text
        data = pickle.dumps(session)
        assert_clean([data, text], secrets_of(fake, agent))
        assert pickle.loads(data) is session


# -- chains of chains -----------------------------------------------------------------------


def test_a_two_hop_chain_signs_each_hop_with_the_hop_before(chain_env):
    first = chain.assume_role(TARGET)
    second = chain.assume_role(SECOND, source=first)
    assert chain.assume_role(SECOND, source=chain.assume_role(TARGET)) is second
    mine = frozen(second)
    assert chain_env.actions() == [WI, AR, AR]
    web, middle, last = chain_env.issued
    hops = calls_of(chain_env, AR)
    assert [call["params"]["RoleArn"] for call in hops] == [TARGET, SECOND]
    assert [signer(call) for call in hops] == [web["access_key"], middle["access_key"]]
    assert last["access_key"] == mine.access_key and last["signed_by"] == middle["access_key"]
    assert frozen(first).access_key == middle["access_key"]
    assert repr(second).count("IrsaSession(") == 3 and SECOND in repr(second) and TARGET in repr(second)
    with pytest.raises(RefreshError) as caught:  # the pod's own role is not trusted by SECOND
        frozen(chain.assume_role(SECOND))
    assert caught.value.code == "AccessDenied"
    assert "arn:aws:sts::444455556666:assumed-role/reader/" not in str(caught.value)
    assert SOURCE_SESSION_ARN in str(caught.value)


def test_a_two_hop_chain_names_the_middle_session_when_denied(chain_env):
    middle = chain.assume_role(TARGET, session_name="hop-1")
    with pytest.raises(RefreshError) as caught:
        frozen(chain.assume_role(UNTRUSTED, source=middle))
    assert "arn:aws:sts::444455556666:assumed-role/reader/hop-1 (role %s" % TARGET in str(caught.value)


# -- pickles and forks ------------------------------------------------------------------------


def test_a_chain_pickles_as_settings_only(chain_env):
    second = chain.assume_role(SECOND, source=chain.assume_role(TARGET, external_id="not-secret"))
    frozen(second)
    data = pickle.dumps(second)
    assert_clean([data], secrets_of(chain_env, tokens=[c["access_key"] for c in chain_env.issued]))
    for setting in (SECOND, TARGET, ROLE_ARN, "not-secret"):
        assert setting.encode() in data
    assert pickle.loads(data) is second
    assert pickle.loads(pickle.dumps(second.get_credentials())) is second.get_credentials()
    assert chain_env.actions() == [WI, AR, AR]


def test_unpickled_in_another_process_the_chain_rebuilds_itself(chain_env, tmp_path):
    second = chain.assume_role(SECOND, source=chain.assume_role(TARGET))
    parent_key = frozen(second).access_key
    (tmp_path / "chain.pickle").write_bytes(pickle.dumps(second))
    lines = lines_of(
        "import pickle\n"
        "s = pickle.load(open(%r, 'rb'))\n"
        "print(type(s).__name__, s.source.source._irsa_settings.role_arn)\n"
        "print(s.get_credentials().get_frozen_credentials().access_key)\n"
        % str(tmp_path / "chain.pickle"),
        # Nothing from the environment: the pickle carries the chain's settings.
        env={
            "AWS_ROLE_ARN": "", "AWS_WEB_IDENTITY_TOKEN_FILE": "", "AWS_ENDPOINT_URL_STS": "",
            "AWS_ROLE_SESSION_NAME": "", "AWS_REGION": "", "AWS_DEFAULT_REGION": "",
        },
    )
    assert lines[0] == "ChainSession %s" % ROLE_ARN
    assert chain_env.actions() == [WI, AR, AR] * 2
    web, middle, last = chain_env.issued[3:]
    assert lines[1] == last["access_key"] != parent_key
    assert [signer(call) for call in calls_of(chain_env, AR)[2:]] == [web["access_key"], middle["access_key"]]


@pytest.mark.skipif(not hasattr(os, "fork"), reason="needs os.fork")
def test_a_child_forked_mid_refresh_gets_its_own_credentials(chain_env):
    chain_env.set_mode(delay=0.5)
    session = chain.assume_role(TARGET)
    busy = in_flight(chain_env, lambda: frozen(session))  # holds both hops' refresh locks
    said = in_child(lambda: frozen(session).access_key, during=busy)
    busy.join(30)
    assert said is not None, "the child hung on a lock its parent's thread held"
    keys = [issued["access_key"] for issued in chain_env.issued]
    assert said in keys, said
    assert said != frozen(session).access_key  # the child fetched its own


@pytest.mark.skipif(not hasattr(os, "fork"), reason="needs os.fork")
def test_a_forked_child_refreshes_with_an_sts_client_of_its_own(chain_env):
    session = chain.assume_role(TARGET)
    parent = frozen(session).access_key
    source_key = frozen(irsa_session.session).access_key
    hop = session.get_credentials()._refresh_using
    inherited = hop._client  # its connection pool is the parent's
    assert inherited is not None

    def work():
        assert frozen(session).access_key == parent  # inherited, still fresh: no call
        creds = session.get_credentials()
        creds._expiry_time = creds.expires_at.replace(year=2000)  # due now
        key = frozen(session).access_key
        assert hop._client is not None and hop._client is not inherited
        return key

    said = in_child(work)
    assert said == chain_env.issued[-1]["access_key"] != parent, said
    assert chain_env.actions() == [WI, AR, AR]
    assert signer(chain_env.calls[-1]) == source_key


# -- nothing leaks -------------------------------------------------------------------------------


def test_no_secret_in_logs_reprs_errors_or_their_chains(chain_env, capture):
    second = chain.assume_role(SECOND, source=chain.assume_role(TARGET))
    mine = frozen(second)
    failures = []
    for role in (UNTRUSTED, GUARDED):
        try:
            frozen(chain.assume_role(role, source=second.source))
        except IrsaError as err:
            failures += chain_of(err)
    assert len(failures) >= 2
    secrets = secrets_of(chain_env)
    assert len(secrets) >= 7
    assert any("AssumeRole" in line for line in capture.lines)
    assert any("x-amz-security-token" in line.lower() for line in capture.lines)
    texts = capture.lines + [repr(second), str(second), repr(second.get_credentials()), repr(mine), str(mine)]
    texts += [repr(err) + str(err) for err in failures]
    texts.append(pickle.dumps(second))
    assert_clean(texts, secrets)


# -- install(), doctor ----------------------------------------------------------------------------


def test_install_feeds_unchanged_code_the_chained_credentials(chain_env):
    installed = chain.install(TARGET)
    assert chain.install(TARGET) is installed
    default = boto3.DEFAULT_SESSION
    creds = installed.get_credentials()
    assert boto3.client("s3")._request_signer._credentials is creds
    assert botocore.session.get_session().get_credentials() is creds
    assert frozen(boto3.Session()).access_key == frozen(installed).access_key
    assert _aio.installed_credentials() is creds  # aiobotocore's sessions, once it is imported
    assert chain_env.actions() == [WI, AR]
    chain.install(TARGET)
    assert boto3.DEFAULT_SESSION is default
    irsa_session.install()  # back to the pod's own role
    assert boto3.DEFAULT_SESSION is not default
    assert boto3.client("s3")._request_signer._credentials is irsa_session.session.get_credentials()


def test_doctor_check_reports_success_and_denial_without_secrets(chain_env):
    from irsa_session.cli.chained import assume_role_check

    found = assume_role_check(TARGET)
    assert found["check"] == "assume-role" and found["status"] == "ok", found
    assert found["assumed_role_arn"] == "arn:aws:sts::444455556666:assumed-role/reader/" + SESSION_NAME
    assert found["access_key_id"] == chain_env.issued[-1]["access_key"]
    denied = assume_role_check(GUARDED, external_id="wrong-id")
    assert denied["status"] == "fail" and denied["code"] == "AccessDenied"
    assert denied["statement"] == {
        "Effect": "Allow",
        "Principal": {"AWS": ROLE_ARN},
        "Action": "sts:AssumeRole",
        "Condition": {"StringEquals": {"sts:ExternalId": "wrong-id"}},
    }
    assert denied["session_arn"] == SOURCE_SESSION_ARN and not denied["source_failed"]
    bad = assume_role_check(TARGET, duration_seconds=7200)
    assert bad["status"] == "fail" and "role chaining" in bad["detail"]
    assert_clean([json.dumps([found, denied, bad])], secrets_of(chain_env))


def test_a_loopback_endpoint_gets_no_session_token_through_a_proxy(chain_env, monkeypatch):
    """AssumeRole signs with the source's session token: it goes to STS on this machine only."""
    from irsa_testing.servers import ProxyTrap

    with ProxyTrap() as proxy:
        monkeypatch.setenv("HTTP_PROXY", proxy.base_url)
        assert frozen(chain.assume_role(TARGET)).access_key == chain_env.issued[-1]["access_key"]
        assert proxy.seen == []
    assert chain_env.actions() == [WI, AR]


NODE_ROLE = "arn:aws:iam::111122223333:role/eks-node"


def test_install_chains_from_boto3_s_default_chain_without_signing_with_itself(fake, monkeypatch, tmp_path):
    """No IRSA here: the source is boto3's chain (a [default] profile); install() must not
    put the chained credentials where that source looks for its own."""
    given = fake.mint(NODE_ROLE, "i-0abc", int(time.time() + 3600), "111122223333", "IQoJnode",
                      {"role_arn": NODE_ROLE, "signed_by": None})
    fake.trust[TARGET] = {"principals": TRUST[TARGET]["principals"] + [NODE_ROLE]}
    (tmp_path / "credentials").write_text(
        "[default]\naws_access_key_id = %s\naws_secret_access_key = %s\naws_session_token = %s\n"
        % (given["access_key"], given["secret_key"], given["session_token"])
    )
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", str(tmp_path / "credentials"))
    monkeypatch.setenv("AWS_ENDPOINT_URL_STS", fake.url)
    monkeypatch.setenv("AWS_REGION", "us-west-2")
    done = []

    def work():
        try:
            done.append(frozen(irsa_session.install(assume_role=TARGET)))
        except Exception as err:  # reported below
            done.append(err)

    worker = threading.Thread(target=work)
    worker.daemon = True
    worker.start()
    worker.join(30)
    assert done, "install(assume_role=...) hung: the chain signed with its own credentials"
    assert not isinstance(done[0], Exception), done[0]
    assert done[0].access_key == fake.issued[-1]["access_key"]
    assert [signer(call) for call in calls_of(fake, AR)] == [given["access_key"]]
    assert frozen(boto3.Session()).access_key == done[0].access_key  # what unchanged code gets


def test_a_hop_and_the_source_it_refreshes_on_the_way_share_one_deadline(clock):
    """The hop's own call hung 10 s; then its source's refresh hangs too: the source gives
    up by the hop's deadline (30 s from the hop's start), not 30 s from its own start."""
    from irsa_session import source as source_module

    class Hung(source_module.Source):
        def __init__(self, inner=None):
            super(Hung, self).__init__(None, sleep=clock.tick, monotonic=clock, deadline=30.0)
            self.inner = inner

        def _try(self, prepared):
            clock.tick(10)  # an attempt waits out its read timeout
            if self.inner is not None:
                return self.inner()  # the source, refreshed to sign this hop
            raise socket.timeout("timed out")

        def _verdict(self, err, state):
            return source_module.FAIL if isinstance(err, IrsaError) else source_module.RETRY

        def _failure(self, err, prepared, attempts, elapsed):
            return err if isinstance(err, IrsaError) else RefreshError("hung %d times" % attempts)

    hop = Hung(inner=Hung())
    started = clock()
    with pytest.raises(RefreshError) as caught:
        hop()
    assert clock() - started <= 30, "the chain took %.1f s" % (clock() - started)
    assert "30 s a fetch may take" in str(caught.value)
