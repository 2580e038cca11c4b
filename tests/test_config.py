"""config: where each setting comes from, the default session name, the STS
endpoint, and validation errors that name the argument and the variable."""

import random
import re

import pytest

from irsa_session import ConfigError, IrsaError, config
from irsa_testing import ROLE_ARN

try:
    from hypothesis import given, settings as hypothesis_settings, strategies as st
except ImportError:  # pragma: no cover - depends on the environment
    given = None

LEGAL_NAME = re.compile(r"^[A-Za-z0-9_+=,.@-]{2,64}\Z")
TOKEN_PATH = "/var/run/secrets/eks.amazonaws.com/serviceaccount/token"


def resolve(environ=None, **kwargs):
    return config.resolve(environ={} if environ is None else environ, **kwargs)


def config_error(environ=None, **kwargs):
    """The ConfigError that resolving these settings raises, checked for its kind."""
    with pytest.raises(ConfigError) as caught:
        resolve(environ, **kwargs)
    err = caught.value
    assert isinstance(err, ValueError)
    assert isinstance(err, IrsaError)
    return str(err)


@pytest.fixture
def hostname(monkeypatch):
    """Sets what socket.gethostname() returns, with the cached default name reset."""
    monkeypatch.setattr(config, "_session_name_cache", [])
    names = {"value": "ray-worker-7f9c"}

    def gethostname():
        value = names["value"]
        if isinstance(value, Exception):
            raise value
        return value

    monkeypatch.setattr(config.socket, "gethostname", gethostname)

    def set_to(value):
        names["value"] = value

    return set_to


# -- precedence --------------------------------------------------------------


def test_everything_from_the_environment():
    env = {
        "AWS_ROLE_ARN": ROLE_ARN,
        "AWS_WEB_IDENTITY_TOKEN_FILE": TOKEN_PATH,
        "AWS_ROLE_SESSION_NAME": "notebook-1",
        "AWS_REGION": "eu-central-1",
        "AWS_ENDPOINT_URL_STS": "http://127.0.0.1:5000",
    }
    settings = resolve(env)
    assert settings.role_arn == ROLE_ARN
    assert settings.token_file == TOKEN_PATH
    assert settings.session_name == "notebook-1"
    assert settings.region_name == "eu-central-1"
    assert settings.sts_endpoint_url == "http://127.0.0.1:5000"
    assert settings.duration_seconds is None
    assert settings.policy is None
    assert settings.policy_arns is None
    assert config.missing(settings) == ()


def test_arguments_beat_the_environment():
    env = {
        "AWS_ROLE_ARN": "arn:aws:iam::999999999999:role/from-env",
        "AWS_WEB_IDENTITY_TOKEN_FILE": "/env/token",
        "AWS_ROLE_SESSION_NAME": "from-env",
        "AWS_REGION": "eu-west-1",
        "AWS_DEFAULT_REGION": "eu-west-2",
        "AWS_ENDPOINT_URL_STS": "http://127.0.0.1:1111",
        "AWS_ENDPOINT_URL": "http://127.0.0.1:2222",
    }
    settings = resolve(
        env,
        role_arn=ROLE_ARN,
        token_file="/arg/token",
        session_name="from-arg",
        region_name="ap-southeast-2",
        sts_endpoint_url="https://sts.example.test",
    )
    assert settings.role_arn == ROLE_ARN
    assert settings.token_file == "/arg/token"
    assert settings.session_name == "from-arg"
    assert settings.region_name == "ap-southeast-2"
    assert settings.sts_endpoint_url == "https://sts.example.test"


def test_an_argument_overrides_an_invalid_environment_value():
    env = {
        "AWS_ROLE_ARN": "not-an-arn",
        "AWS_WEB_IDENTITY_TOKEN_FILE": "relative/token",
        "AWS_REGION": "US EAST",
        "AWS_ENDPOINT_URL_STS": "ftp://x",
    }
    settings = resolve(
        env,
        role_arn=ROLE_ARN,
        token_file=TOKEN_PATH,
        region_name="us-west-2",
        sts_endpoint_url="http://127.0.0.1:5000",
    )
    assert settings.role_arn == ROLE_ARN
    assert settings.token_file == TOKEN_PATH
    assert settings.region_name == "us-west-2"
    assert settings.sts_endpoint_url == "http://127.0.0.1:5000"


def test_aws_region_beats_aws_default_region():
    env = {"AWS_REGION": "eu-west-1", "AWS_DEFAULT_REGION": "us-east-2"}
    assert resolve(env).region_name == "eu-west-1"
    assert resolve({"AWS_DEFAULT_REGION": "us-east-2"}).region_name == "us-east-2"


def test_endpoint_sts_variable_beats_the_all_services_one():
    env = {
        "AWS_ENDPOINT_URL_STS": "http://127.0.0.1:1111",
        "AWS_ENDPOINT_URL": "http://127.0.0.1:2222",
    }
    assert resolve(env).sts_endpoint_url == "http://127.0.0.1:1111"
    only_all = {"AWS_ENDPOINT_URL": "http://127.0.0.1:2222", "AWS_REGION": "us-west-2"}
    assert resolve(only_all).sts_endpoint_url == "http://127.0.0.1:2222"


def test_blank_environment_values_count_as_unset(hostname):
    env = {
        "AWS_ROLE_ARN": "   ",
        "AWS_WEB_IDENTITY_TOKEN_FILE": "",
        "AWS_ROLE_SESSION_NAME": " \t ",
        "AWS_REGION": "  ",
        "AWS_DEFAULT_REGION": "eu-north-1",
        "AWS_ENDPOINT_URL_STS": "",
        "AWS_ENDPOINT_URL": " \n",
    }
    settings = resolve(env)
    assert settings.role_arn is None
    assert settings.token_file is None
    assert settings.session_name == "ray-worker-7f9c"
    assert settings.region_name == "eu-north-1"
    assert settings.sts_endpoint_url == "https://sts.eu-north-1.amazonaws.com"
    assert config.missing(settings) == ("AWS_ROLE_ARN", "AWS_WEB_IDENTITY_TOKEN_FILE")


def test_blank_sts_endpoint_variable_falls_through_to_the_all_services_one():
    env = {"AWS_ENDPOINT_URL_STS": "  ", "AWS_ENDPOINT_URL": "http://127.0.0.1:2222"}
    assert resolve(env).sts_endpoint_url == "http://127.0.0.1:2222"


def test_whitespace_is_stripped_from_environment_and_arguments():
    env = {
        "AWS_ROLE_ARN": "  %s\n" % ROLE_ARN,
        "AWS_WEB_IDENTITY_TOKEN_FILE": "\t%s \n" % TOKEN_PATH,
        "AWS_ROLE_SESSION_NAME": " notebook-1\n",
        "AWS_REGION": " us-west-2\n",
        "AWS_ENDPOINT_URL_STS": " http://127.0.0.1:5000/ \n",
    }
    settings = resolve(env)
    assert settings.role_arn == ROLE_ARN
    assert settings.token_file == TOKEN_PATH
    assert settings.session_name == "notebook-1"
    assert settings.region_name == "us-west-2"
    assert settings.sts_endpoint_url == "http://127.0.0.1:5000"
    by_argument = resolve(
        role_arn=" %s " % ROLE_ARN, region_name="\nus-west-2 ", session_name="  my-pod  "
    )
    assert by_argument.role_arn == ROLE_ARN
    assert by_argument.region_name == "us-west-2"
    assert by_argument.session_name == "my-pod"


def test_resolve_reads_os_environ_by_default(monkeypatch):
    monkeypatch.setenv("AWS_ROLE_ARN", ROLE_ARN)
    monkeypatch.setenv("AWS_WEB_IDENTITY_TOKEN_FILE", TOKEN_PATH)
    monkeypatch.setenv("AWS_DEFAULT_REGION", "ca-central-1")
    settings = config.resolve()
    assert settings.role_arn == ROLE_ARN
    assert settings.token_file == TOKEN_PATH
    assert settings.region_name == "ca-central-1"
    assert settings.sts_endpoint_url == "https://sts.ca-central-1.amazonaws.com"


def test_settings_are_hashable_even_with_a_list_of_policy_arns():
    arns = ["arn:aws:iam::aws:policy/ReadOnlyAccess"]
    one = resolve(role_arn=ROLE_ARN, token_file=TOKEN_PATH, policy_arns=arns)
    two = resolve(role_arn=ROLE_ARN, token_file=TOKEN_PATH, policy_arns=list(arns))
    assert one.policy_arns == tuple(arns)
    assert hash(one) == hash(two) and one == two


# -- missing() ---------------------------------------------------------------


def test_missing_lists_the_unset_variables():
    assert config.missing(resolve()) == ("AWS_ROLE_ARN", "AWS_WEB_IDENTITY_TOKEN_FILE")
    assert config.missing(resolve(role_arn=ROLE_ARN)) == ("AWS_WEB_IDENTITY_TOKEN_FILE",)
    assert config.missing(resolve(token_file=TOKEN_PATH)) == ("AWS_ROLE_ARN",)
    assert config.missing(resolve(role_arn=ROLE_ARN, token_file=TOKEN_PATH)) == ()


# -- session name ------------------------------------------------------------


def test_session_name_from_the_environment_is_sanitised(hostname):
    settings = resolve({"AWS_ROLE_SESSION_NAME": "jane doe/notebook:1"})
    assert settings.session_name == "jane-doe-notebook-1"


def test_session_name_argument_beats_the_environment_and_is_sanitised(hostname):
    settings = resolve({"AWS_ROLE_SESSION_NAME": "from-env"}, session_name="arg name!")
    assert settings.session_name == "arg-name-"


def test_default_session_name_is_the_host_name(hostname):
    hostname("ray-head-5d8f.cluster.local")
    assert resolve().session_name == "ray-head-5d8f.cluster.local"


def test_default_session_name_sanitises_the_host_name(hostname):
    hostname("pod name:with/bad\\chars" + "x" * 80)
    name = resolve().session_name
    assert LEGAL_NAME.match(name), name
    assert name.startswith("pod-name-with-bad-chars")
    assert len(name) == 64


def test_default_session_name_is_stable_across_calls(hostname):
    hostname("first-host")
    first = resolve().session_name
    hostname("second-host")
    assert resolve().session_name == first == "first-host"
    assert resolve({"AWS_REGION": "us-west-2"}).session_name == first


@pytest.mark.parametrize("failure", ["", OSError("no host name")])
def test_default_session_name_without_a_host_name_is_a_timestamp(hostname, failure):
    hostname(failure)
    name = resolve().session_name
    assert LEGAL_NAME.match(name), name
    assert re.search(r"\d{9,}", name), name
    assert resolve().session_name == name


# -- sanitize_session_name ---------------------------------------------------


@pytest.mark.parametrize(
    "raw, expected",
    [
        ("ray-worker-7f9c.default.svc", "ray-worker-7f9c.default.svc"),
        ("user@example.com,team=a+b_c", "user@example.com,team=a+b_c"),
        ("pod name/with:colons", "pod-name-with-colons"),
        ("caf\u00e9 \u4e2d\u6587", "caf----"),
        ("a" * 100, "a" * 64),
        ("b" * 64, "b" * 64),
        ("ok", "ok"),
    ],
)
def test_sanitize_session_name_cases(raw, expected):
    assert config.sanitize_session_name(raw) == expected


@pytest.mark.parametrize("raw", ["", "a", "!", " ", "\u00e9"])
def test_sanitize_session_name_pads_short_names(raw):
    name = config.sanitize_session_name(raw)
    assert LEGAL_NAME.match(name), name
    assert len(name) >= 2
    assert config.sanitize_session_name(raw) == name


def _check_sanitised(raw):
    name = config.sanitize_session_name(raw)
    assert LEGAL_NAME.match(name), (raw, name)
    assert config.sanitize_session_name(name) == name, (raw, name)
    if LEGAL_NAME.match(raw):
        assert name == raw


def test_sanitize_session_name_on_random_strings():
    rand = random.Random(1234)
    alphabet = (
        "abcXYZ019_+=,.@-" " \t\n/:;!?*#%&()[]{}<>|\\'\"~`^$" "\u00e9\u00df\u4e2d\u0663\U0001f600"
    )
    for _ in range(2000):
        raw = "".join(rand.choice(alphabet) for _ in range(rand.randint(0, 90)))
        _check_sanitised(raw)


if given is not None:

    @hypothesis_settings(max_examples=300, deadline=None)
    @given(st.text(max_size=120))
    def test_sanitize_session_name_property(raw):
        _check_sanitised(raw)


else:

    @pytest.mark.skip(reason="hypothesis is not installed")
    def test_sanitize_session_name_property():
        pass  # pragma: no cover


# -- STS endpoint ------------------------------------------------------------


@pytest.mark.parametrize(
    "region, url",
    [
        ("us-west-2", "https://sts.us-west-2.amazonaws.com"),
        ("us-east-1", "https://sts.us-east-1.amazonaws.com"),
        ("ap-east-1", "https://sts.ap-east-1.amazonaws.com"),
        ("cn-north-1", "https://sts.cn-north-1.amazonaws.com.cn"),
        ("cn-northwest-1", "https://sts.cn-northwest-1.amazonaws.com.cn"),
        ("us-gov-west-1", "https://sts.us-gov-west-1.amazonaws.com"),
        ("us-iso-east-1", "https://sts.us-iso-east-1.c2s.ic.gov"),
        ("us-isob-east-1", "https://sts.us-isob-east-1.sc2s.sgov.gov"),
        ("eu-isoe-west-1", "https://sts.eu-isoe-west-1.cloud.adc-e.uk"),
    ],
)
def test_regional_sts_endpoint(region, url):
    assert config.sts_endpoint(region, environ={}) == url
    assert resolve(region_name=region).sts_endpoint_url == url
    regional = {"AWS_STS_REGIONAL_ENDPOINTS": "regional", "AWS_REGION": region}
    assert resolve(regional).sts_endpoint_url == url


def test_no_region_means_the_global_endpoint():
    assert config.sts_endpoint(None, environ={}) == "https://sts.amazonaws.com"
    assert resolve().sts_endpoint_url == "https://sts.amazonaws.com"


@pytest.mark.parametrize("value", ["legacy", " Legacy\n"])
def test_legacy_sends_the_old_global_regions_to_the_global_endpoint(value):
    env = {"AWS_STS_REGIONAL_ENDPOINTS": value}
    assert config.sts_endpoint("us-east-1", environ=env) == "https://sts.amazonaws.com"
    assert resolve(env, region_name="us-east-1").sts_endpoint_url == "https://sts.amazonaws.com"
    # Regions launched after the global endpoint always had their own.
    assert config.sts_endpoint("ap-east-1", environ=env) == "https://sts.ap-east-1.amazonaws.com"
    assert (
        resolve(env, region_name="ap-east-1").sts_endpoint_url
        == "https://sts.ap-east-1.amazonaws.com"
    )


def test_an_explicit_endpoint_beats_legacy():
    env = {"AWS_STS_REGIONAL_ENDPOINTS": "legacy", "AWS_REGION": "us-east-1"}
    settings = resolve(env, sts_endpoint_url="https://sts.us-east-1.amazonaws.com/")
    assert settings.sts_endpoint_url == "https://sts.us-east-1.amazonaws.com"


# -- validation --------------------------------------------------------------


@pytest.mark.parametrize(
    "arn",
    [
        ROLE_ARN,
        "arn:aws:iam::111122223333:role/data-reader",
        "arn:aws-cn:iam::111122223333:role/reader",
        "arn:aws-us-gov:iam::111122223333:role/a/b/c/name+with=chars,.@-_",
    ],
)
def test_valid_role_arns(arn):
    assert resolve(role_arn=arn).role_arn == arn
    assert resolve({"AWS_ROLE_ARN": arn}).role_arn == arn


@pytest.mark.parametrize(
    "arn",
    [
        "not-an-arn",
        "data-reader",
        "arn:aws:iam::1111:role/short-account",
        "arn:aws:iam::111122223333:role/",
        "arn:aws:iam::111122223333:role/has space",
        "arn:aws:iam::111122223333:role/" + "n" * 65,
        "arn:aws:s3:::bucket",
        "arn:aws:iam::111122223333:user/bob",
        "arn:aws:iam::111122223333:policy/ReadOnly",
        "arn:aws:sts::111122223333:assumed-role/data-reader/session",
    ],
)
def test_invalid_role_arn(arn):
    for message in (config_error(role_arn=arn), config_error({"AWS_ROLE_ARN": arn})):
        assert repr(arn) in message
        assert "role_arn" in message
        assert "AWS_ROLE_ARN" in message
        assert "arn:<partition>:iam::" in message


def test_invalid_role_arn_raises_even_without_a_token_file():
    # fallback covers only missing settings: a wrong ARN is reported either way.
    message = config_error({"AWS_ROLE_ARN": "arn:aws:iam::111122223333:user/bob"})
    assert "AWS_ROLE_ARN" in message


@pytest.mark.parametrize("value", [900, 3600, 43200])
def test_valid_durations(value):
    assert resolve(duration_seconds=value).duration_seconds == value


@pytest.mark.parametrize("value", [899, 43201, 0, -1, True, False, "3600", 3600.0])
def test_invalid_durations(value):
    message = config_error(duration_seconds=value)
    assert "duration_seconds" in message
    assert repr(value) in message
    assert "900" in message and "43200" in message
    wrong_type = isinstance(value, (bool, str, float))
    assert ("not a whole number" in message) == wrong_type
    assert ("out of range" in message) != wrong_type


@pytest.mark.parametrize("path", ["token", "./token", "var/run/secrets/token", "~/token"])
def test_relative_token_file(path):
    for message in (
        config_error(token_file=path),
        config_error({"AWS_WEB_IDENTITY_TOKEN_FILE": path}),
    ):
        assert repr(path) in message
        assert "token_file" in message
        assert "AWS_WEB_IDENTITY_TOKEN_FILE" in message
        assert "absolute" in message


@pytest.mark.parametrize("region", ["US EAST", "us_east_1", "US-EAST-1", "us-east-1!", "-us"])
def test_invalid_region(region):
    for message in (
        config_error(region_name=region),
        config_error({"AWS_REGION": region}),
        config_error({"AWS_DEFAULT_REGION": region}),
    ):
        assert repr(region) in message
        assert "region_name" in message
        assert "AWS_REGION" in message
        assert "AWS_DEFAULT_REGION" in message


@pytest.mark.parametrize(
    "url",
    ["http://127.0.0.1:5000", "https://sts.us-west-2.amazonaws.com", "https://sts.example.test/sts"],
)
def test_valid_endpoint_urls(url):
    assert resolve(sts_endpoint_url=url).sts_endpoint_url == url
    assert resolve({"AWS_ENDPOINT_URL_STS": url}).sts_endpoint_url == url


@pytest.mark.parametrize("url", ["sts.amazonaws.com", "ftp://x", "http://", "https://a b"])
def test_invalid_endpoint_url(url):
    message = config_error(sts_endpoint_url=url)
    assert repr(url) in message
    assert "sts_endpoint_url" in message
    for name in ("AWS_ENDPOINT_URL_STS", "AWS_ENDPOINT_URL"):
        message = config_error({name: url})
        assert repr(url) in message
        assert re.search(r"(?<![A-Z_])%s(?![A-Z_])" % name, message), message


def test_invalid_endpoint_url_message_names_argument_and_variable():
    # Like every other setting's error, name both places the value can be set.
    for message in (
        config_error(sts_endpoint_url="ftp://x"),
        config_error({"AWS_ENDPOINT_URL_STS": "ftp://x"}),
    ):
        assert "sts_endpoint_url" in message
        assert "AWS_ENDPOINT_URL_STS" in message


def test_valid_policy_is_kept_as_given():
    policy = '{"Version": "2012-10-17", "Statement": []}'
    assert resolve(policy=policy).policy == policy


@pytest.mark.parametrize("policy", ["{not json", "", "{'single': 'quotes'}"])
def test_policy_not_json(policy):
    message = config_error(policy=policy)
    assert "policy" in message
    assert "JSON" in message


@pytest.mark.parametrize("policy", [{"Version": "2012-10-17"}, 1, b"{}"])
def test_policy_not_a_string(policy):
    message = config_error(policy=policy)
    assert "policy" in message
    assert "JSON string" in message
    assert type(policy).__name__ in message


def test_valid_policy_arns():
    arns = [
        "arn:aws:iam::aws:policy/ReadOnlyAccess",
        "arn:aws:iam::111122223333:policy/team/read-bucket",
    ]
    assert resolve(policy_arns=arns).policy_arns == tuple(arns)
    assert resolve(policy_arns=tuple(arns)).policy_arns == tuple(arns)


def test_policy_arns_as_a_bare_string():
    message = config_error(policy_arns="arn:aws:iam::aws:policy/ReadOnlyAccess")
    assert "policy_arns" in message
    assert "list" in message
    assert "str" in message


@pytest.mark.parametrize(
    "bad", ["ReadOnlyAccess", "arn:aws:iam::111122223333:role/not-a-policy", 42, None]
)
def test_policy_arns_holding_a_non_arn(bad):
    message = config_error(policy_arns=["arn:aws:iam::aws:policy/ReadOnlyAccess", bad])
    assert "policy_arns" in message
    assert repr(bad) in message


@pytest.mark.parametrize("argument", ["role_arn", "token_file", "region_name", "session_name"])
def test_non_string_argument(argument):
    message = config_error(**{argument: 123})
    assert argument in message
    assert "int" in message


# -- where the token may go (issue 10) ---------------------------------------


@pytest.mark.parametrize(
    "url, says",
    [
        ("http://sts.example.com", "plain http to 'sts.example.com'"),
        ("http://10.0.0.8:8080", "plain http to '10.0.0.8'"),
        ("https://sts.amazonaws.com@evil.example", "user info"),
        ("https://user:hunter2@sts.amazonaws.com", "user info"),
        ("http://127.0.0.1@evil.example", "user info"),
        ("https://sts.amazonaws.com:99999", "invalid port"),
    ],
)
@pytest.mark.parametrize("where", ["argument", "AWS_ENDPOINT_URL_STS", "AWS_ENDPOINT_URL"])
def test_endpoints_that_would_leak_the_token_are_refused(url, says, where):
    if where == "argument":
        err = config_error(sts_endpoint_url=url)
    else:
        err = config_error({where: url})
    message = str(err)
    assert says in message and "sts_endpoint_url" in message and "AWS_ENDPOINT_URL_STS" in message
    assert "here from %s" % ("sts_endpoint_url" if where == "argument" else where) in message
    assert "hunter2" not in message


@pytest.mark.parametrize(
    "url", ["http://127.0.0.1:5000", "http://localhost:1", "http://[::1]:5000", "https://sts.example.com:8443/x"]
)
def test_https_and_plain_http_to_this_machine_are_accepted(url):
    assert resolve(sts_endpoint_url=url).sts_endpoint_url == url


def test_ignore_configured_endpoint_urls_is_honoured():
    env = {
        "AWS_IGNORE_CONFIGURED_ENDPOINT_URLS": "true",
        "AWS_ENDPOINT_URL_STS": "http://127.0.0.1:1111",
        "AWS_ENDPOINT_URL": "http://127.0.0.1:2222",
        "AWS_REGION": "eu-west-1",
    }
    assert resolve(env).sts_endpoint_url == "https://sts.eu-west-1.amazonaws.com"
    # An explicit argument is not "configured": it still wins, as in botocore.
    assert resolve(env, sts_endpoint_url="http://127.0.0.1:3333").sts_endpoint_url == "http://127.0.0.1:3333"
    env["AWS_IGNORE_CONFIGURED_ENDPOINT_URLS"] = "false"
    assert resolve(env).sts_endpoint_url == "http://127.0.0.1:1111"
    # Ignored variables are not checked either: a bad one does not stop the pod.
    env.update(AWS_IGNORE_CONFIGURED_ENDPOINT_URLS="TRUE", AWS_ENDPOINT_URL_STS="http://evil.example")
    assert resolve(env).sts_endpoint_url == "https://sts.eu-west-1.amazonaws.com"


def test_resolve_takes_keywords_only():
    with pytest.raises(TypeError):
        config.resolve(ROLE_ARN)  # a positional slip (token_file for role_arn) cannot happen


def test_pick_says_where_each_setting_came_from():
    env = {"AWS_ROLE_ARN": ROLE_ARN, "AWS_DEFAULT_REGION": "eu-west-1"}
    assert config.pick("role_arn", None, env, "--role-arn") == (ROLE_ARN, "AWS_ROLE_ARN")
    other = "arn:aws:iam::111122223333:role/other"
    assert config.pick("role_arn", other, env, "--role-arn") == (other, "--role-arn")
    assert config.pick("region_name", None, env) == ("eu-west-1", "AWS_DEFAULT_REGION")
    assert config.pick("token_file", None, {}) == (None, None)


def test_check_validates_one_field_as_resolve_does():
    config.check("role_arn", ROLE_ARN)
    with pytest.raises(ConfigError, match="role"):
        config.check("role_arn", "arn:aws:iam::1:role/x")
    with pytest.raises(ConfigError, match="us-west-2"):
        config.check("region_name", "US West 2")
