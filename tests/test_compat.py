"""The botocore names that _compat's adapter relies on, pinned on this row's botocore.

``_compat.Refreshable`` serves the library's refresher as botocore's
``RefreshableCredentials``.  If a botocore release renamed one of the names it
takes over (or added a public one), botocore's own code would reach past the
adapter into state that is never set: these tests fail first, on every row.
"""

import datetime

import botocore.credentials

from irsa_session import _compat
from irsa_session.credentials import Credentials
from irsa_session.source import Issued

BOTOCORE = botocore.credentials.RefreshableCredentials
# Public names of botocore's class that need no adapting: a constructor from
# botocore's own metadata dicts (not used with these credentials) and a helper
# that reads a property through getattr (so through the adapter).
NOT_ADAPTED = {"create_from_metadata", "get_deferred_property"}


def botocore_credentials():
    expiry = datetime.datetime.now(datetime.timezone.utc) + datetime.timedelta(hours=1)
    return BOTOCORE("AKID", "secret", "token", expiry, lambda: None, "test")


def test_every_adapted_name_is_one_botocore_has():
    real = botocore_credentials()
    missing = [name for name in _compat.ADAPTED_NAMES if not hasattr(real, name)]
    assert missing == [], "this botocore no longer has %s: the adapter must follow" % missing


def test_the_adapter_answers_every_adapted_name_itself():
    ours = Credentials(lambda: None)
    inherited = [
        name for name in _compat.ADAPTED_NAMES
        if name not in vars(ours)
        and not any(name in vars(cls) for cls in Credentials.__mro__ if cls not in BOTOCORE.__mro__)
    ]
    assert inherited == [], "these names fall through to botocore's own logic: %s" % inherited


def test_no_public_botocore_name_goes_unadapted():
    public = set(name for name in dir(BOTOCORE) if not name.startswith("_"))
    unadapted = sorted(public - set(_compat.ADAPTED_NAMES) - NOT_ADAPTED - {"account_id"})
    assert unadapted == [], "botocore added %s: adapt them in _compat.Refreshable" % unadapted


def test_frozen_credentials_keep_botocore_field_order():
    assert _compat.ReadOnlyCredentials._fields[:3] == ("access_key", "secret_key", "token")


def test_botocore_properties_read_through_the_refresher():
    now = [1000000.0]
    issued = Issued("ASIA" + "A" * 16, "s" * 40, "t" * 40, now[0] + 3600, "111122223333")
    creds = Credentials(lambda: issued, clock=lambda: now[0])
    assert creds.refresh_needed() and creds._is_expired()
    assert (creds.access_key, creds.secret_key, creds.token) == ("ASIA" + "A" * 16, "s" * 40, "t" * 40)
    assert creds.get_frozen_credentials() is creds._refresher.current
    assert creds._expiry_time == datetime.datetime.fromtimestamp(now[0] + 3600, datetime.timezone.utc)
    assert not creds.refresh_needed() and not creds._is_expired()
    creds._expiry_time = datetime.datetime.fromtimestamp(now[0] + 60, datetime.timezone.utc)
    assert creds.refresh_needed()  # botocore's name moves the windows
    assert creds._refresh_using() is issued
    assert not creds._refresh_lock.locked()
