"""Code a user writes against the public API: a type checker must accept all of it.

Checked by mypy in the tests-newest-3.11 row (never run: it would call STS).
"""

import datetime
from typing import List, Optional

import irsa_session
from irsa_session import (
    ConfigError,
    IrsaError,
    RefreshError,
    TokenFileError,
    assume_role,
    assumed_role_session,
    install,
    pod_identity_session,
    refreshable_credentials,
)


def use() -> List[object]:
    default = irsa_session.session
    reader = assumed_role_session(
        "arn:aws:iam::111122223333:role/reader", "/var/run/token",
        session_name="job", region_name="us-west-2", duration_seconds=900,
        sts_endpoint_url=None, policy=None, policy_arns=["arn:aws:iam::aws:policy/ReadOnlyAccess"],
        fallback=False, cache_dir="/cache",
    )
    other = assume_role("arn:aws:iam::444455556666:role/writer", source=reader, external_id="x")
    installed = install(region_name="us-west-2", assume_role="arn:aws:iam::444455556666:role/w")
    pods = pod_identity_session(full_uri=None, token_file=None, region_name=None, cache_dir=None)
    credentials = refreshable_credentials()
    expires: Optional[datetime.datetime] = credentials.expires_at
    starts: Optional[datetime.datetime] = credentials.refresh_at
    s3 = default.client("s3")
    try:
        credentials.get_frozen_credentials()
    except ConfigError as err:
        missing: tuple = err.missing
        print(missing)
    except TokenFileError as err:
        print(err.path)
    except RefreshError as err:
        code: Optional[str] = err.code
        attempts: int = err.attempts
        print(code, attempts)
    except IrsaError:
        pass
    return [reader, other, installed, pods, expires, starts, s3, irsa_session.__version__]
