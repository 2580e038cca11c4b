"""Role chaining wired into the package: the export, install(assume_role=), the CLI."""

import json

import boto3
import pytest

import irsa_session
from irsa_session import chain, cli, sessions
from test_chain import (  # noqa: F401 (fixtures)
    AR, EXTERNAL_ID, GUARDED, ROLE_ARN, SOURCE_SESSION_ARN, TARGET, UNTRUSTED, WI,
    calls_of, chain_env, fake, frozen, server, signer,
)


def test_assume_role_is_exported():
    assert "assume_role" in irsa_session.__all__
    assert irsa_session.assume_role is chain.assume_role


def test_install_assume_role_and_back(chain_env):
    chained = irsa_session.install(assume_role=GUARDED, external_id=EXTERNAL_ID)
    assert chained is chain.assume_role(GUARDED, external_id=EXTERNAL_ID)
    assert boto3.client("s3")._request_signer._credentials is chained.get_credentials()
    assert frozen(boto3.Session()).access_key == frozen(chained).access_key
    assert chain_env.actions() == [WI, AR]
    plain = irsa_session.install()
    assert boto3.client("s3")._request_signer._credentials is plain.get_credentials()
    assert irsa_session.install(assume_role=GUARDED, external_id=EXTERNAL_ID) is chained
    assert boto3.client("s3")._request_signer._credentials is chained.get_credentials()
    with pytest.raises(TypeError):
        irsa_session.install(external_id=EXTERNAL_ID)


def test_credential_process_and_env_print_the_chained_credentials(chain_env, capsys):
    assert cli.main(["credential-process", "--assume-role", GUARDED, "--external-id", EXTERNAL_ID]) == 0
    document = json.loads(capsys.readouterr().out)
    assert document["AccessKeyId"] == chain_env.issued[-1]["access_key"]
    assert chain_env.actions() == [WI, AR]
    assert signer(calls_of(chain_env, AR)[0]) == chain_env.issued[0]["access_key"]
    assert cli.main(["env", "--format", "json", "--assume-role", TARGET]) == 0
    assert json.loads(capsys.readouterr().out)["AWS_ACCESS_KEY_ID"] == chain_env.issued[-1]["access_key"]
    assert cli.main(["credential-process", "--external-id", "x-y-z"]) == 1
    assert "--external-id goes with --assume-role" in capsys.readouterr().err


def test_credential_process_says_why_it_was_denied_on_stderr_only(chain_env, capsys):
    assert cli.main(["credential-process", "--assume-role", UNTRUSTED]) == 1
    captured = capsys.readouterr()
    assert captured.out == "" and SOURCE_SESSION_ARN in captured.err


def test_credential_process_needs_a_source_to_sign_with(capsys):
    assert cli.main(["credential-process", "--assume-role", TARGET]) == 1
    assert "neither IRSA" in capsys.readouterr().err


def test_doctor_checks_the_chained_role(chain_env, capsys):
    assert cli.main(["doctor", "--json", "--assume-role", GUARDED, "--external-id", EXTERNAL_ID]) == 0
    last = json.loads(capsys.readouterr().out)["findings"][-1]
    assert (last["check"], last["status"]) == ("assume-role", "ok")
    assert cli.main(["doctor", "--assume-role", GUARDED, "--external-id", "wrong-id"]) == 1
    text = capsys.readouterr().out
    assert "[fail]     assume-role: STS denied AssumeRole" in text
    assert '"sts:ExternalId": "wrong-id"' in text and ROLE_ARN in text
    assert "PROBLEMS: assume-role failed." in text
