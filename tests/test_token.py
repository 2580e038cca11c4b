"""token: reading the projected token at every call, errors that say what to do
(and never show the token), and decoding claims for messages."""

import base64
import errno
import json
import os
import traceback

import pytest

from irsa_session import ConfigError, IrsaError, TokenFileError, token
from irsa_testing import ISSUER, SUBJECT
from irsa_testing.leaks import assert_clean
from irsa_testing.tokens import make_token


def read_error(path, **kwargs):
    with pytest.raises(TokenFileError) as caught:
        token.read(path, **kwargs)
    err = caught.value
    assert isinstance(err, IrsaError)
    assert not isinstance(err, ConfigError)
    assert err.path == path
    message = str(err)
    assert repr(path) in message
    assert "AWS_WEB_IDENTITY_TOKEN_FILE" in message
    return err, message


def opener_raising(exc):
    calls = []

    def _open(path, mode="r"):
        calls.append((path, mode))
        raise exc

    _open.calls = calls
    return _open


def rendered(err):
    """Everything a traceback or a log record of ``err`` would show."""
    return "".join(traceback.format_exception(type(err), err, err.__traceback__))


def chain(err):
    seen = []
    while err is not None and err not in seen:
        seen.append(err)
        err = err.__cause__ or err.__context__
    return seen


# -- read --------------------------------------------------------------------


def test_read_strips_whitespace_and_newline(tmp_path):
    jwt = make_token()
    path = tmp_path / "token"
    path.write_bytes(b"\n  " + jwt.encode() + b" \r\n")
    assert token.read(str(path)) == jwt


def test_read_returns_the_token_file_fixture(token_file):
    value = token.read(token_file)
    assert value.count(".") == 2
    assert not value.endswith("\n")


def test_read_reads_the_file_again_on_every_call(tmp_path):
    path = tmp_path / "token"
    first, second = make_token(), make_token(jti="second")
    assert first != second
    path.write_text(first + "\n")
    assert token.read(str(path)) == first
    path.write_text(second + "\n")
    assert token.read(str(path)) == second
    path.write_text(first)
    assert token.read(str(path)) == first


def test_read_follows_a_kubelet_data_symlink_swap(tmp_path):
    # The kubelet's AtomicWriter: token -> ..data/token, ..data -> ..<timestamp>.
    volume = tmp_path / "serviceaccount"
    volume.mkdir()
    old, new = make_token(), make_token(jti="rotated")
    (volume / "..2026_a").mkdir()
    (volume / "..2026_a" / "token").write_text(old)
    os.symlink("..2026_a", str(volume / "..data"))
    os.symlink(os.path.join("..data", "token"), str(volume / "token"))
    path = str(volume / "token")
    assert token.read(path) == old

    (volume / "..2026_b").mkdir()
    (volume / "..2026_b" / "token").write_text(new)
    os.symlink("..2026_b", str(volume / "..data_tmp"))
    os.rename(str(volume / "..data_tmp"), str(volume / "..data"))
    assert os.readlink(str(volume / "..data")) == "..2026_b"
    assert token.read(path) == new

    # The kubelet then removes the old directory.
    os.remove(str(volume / "..2026_a" / "token"))
    os.rmdir(str(volume / "..2026_a"))
    assert token.read(path) == new


def test_read_opens_through_the_hook_in_binary_mode(tmp_path):
    path = tmp_path / "token"
    path.write_text("abc")
    modes = []

    def _open(name, mode="r"):
        modes.append(mode)
        return open(name, mode)

    assert token.read(str(path), _open=_open) == "abc"
    assert modes == ["rb"]


# -- read errors -------------------------------------------------------------


def test_missing_file(tmp_path):
    path = str(tmp_path / "absent" / "token")
    err, message = read_error(path)
    assert "does not exist" in message
    assert "eks.amazonaws.com/role-arn" in message
    assert isinstance(err.__cause__, FileNotFoundError)


def test_directory(tmp_path):
    path = str(tmp_path)
    err, message = read_error(path)
    assert "directory" in message
    assert isinstance(err.__cause__, IsADirectoryError)


@pytest.mark.parametrize("content", [b"", b"   ", b"\n", b" \t\r\n \n"])
def test_empty_or_whitespace_only(tmp_path, content):
    path = tmp_path / "token"
    path.write_bytes(content)
    err, message = read_error(str(path))
    assert "empty" in message


@pytest.mark.parametrize("prefix", [b"", b"junk-before-"])
def test_not_utf8(tmp_path, prefix):
    path = tmp_path / "token"
    path.write_bytes(prefix + b"\xff\xfe")
    err, message = read_error(str(path))
    assert "UTF-8" in message
    assert err.__cause__ is None and err.__context__ is None


def test_unreadable_names_fsgroup_and_uid(tmp_path):
    path = str(tmp_path / "token")
    denied = PermissionError(errno.EACCES, "Permission denied", path)
    _open = opener_raising(denied)
    err, message = read_error(path, _open=_open)
    assert _open.calls == [(path, "rb")]
    assert "fsGroup" in message
    assert "uid %d" % os.getuid() in message
    assert err.__cause__ is denied


def test_other_os_error(tmp_path):
    path = str(tmp_path / "token")
    failure = OSError(errno.EIO, "Input/output error")
    err, message = read_error(path, _open=opener_raising(failure))
    assert "could not be read" in message
    assert "Input/output error" in message
    assert err.__cause__ is failure


def test_os_error_without_strerror(tmp_path):
    path = str(tmp_path / "token")
    failure = OSError("stale NFS handle")
    err, message = read_error(path, _open=opener_raising(failure))
    assert "stale NFS handle" in message
    assert err.__cause__ is failure


def test_os_errors_from_the_real_file_system_chain_their_cause(tmp_path):
    missing = str(tmp_path / "absent")
    err, _ = read_error(missing)
    assert isinstance(err.__cause__, OSError)
    assert err.__cause__.errno == errno.ENOENT
    assert err.__suppress_context__


def _token_failures(tmp_path, jwt):
    """(name, path) for every way read fails on a file that holds the token."""
    cases = {
        "not utf-8": jwt.encode() + b"\xff\xfe",
        "not utf-8 after a byte-order mark": b"\xef\xbb\xbf" + jwt.encode() + b"\n\x80",
        "over 64 KiB": (jwt + "\n").encode() * (64 * 1024 // len(jwt) + 2),
    }
    found = []
    for number, (name, data) in enumerate(sorted(cases.items())):
        path = tmp_path / ("token-%d" % number)
        path.write_bytes(data)
        found.append((name, str(path)))
    return found


def test_no_message_contains_the_token(tmp_path):
    """Each failure had the token in hand: none shows it, whole, encoded or in part."""
    jwt = make_token()
    for name, path in _token_failures(tmp_path, jwt):
        err, message = read_error(path)
        shown = [message, repr(err), rendered(err)] + [str(e) for e in chain(err)]
        shown += [repr(getattr(e, "args", ())) for e in chain(err)]
        assert_clean(shown, [jwt], what="the %s error" % name)


def test_not_utf8_error_chain_carries_no_token(tmp_path):
    # A UnicodeDecodeError keeps the whole undecodable input in .object and
    # .args, and shows it in its repr: chaining it would carry the token along
    # to anything that reprs or serialises the exception chain.
    jwt = make_token()
    path = tmp_path / "token"
    path.write_bytes(jwt.encode() + b"\xff\xfe")
    err, _ = read_error(str(path))
    payload = jwt.split(".")[1]
    for linked in chain(err):
        # (Checked without letting pytest print the token on failure.)
        leaked = payload in repr(linked) or payload in repr(getattr(linked, "args", ()))
        assert not leaked, "%s in the chain carries the token" % type(linked).__name__


# -- claims ------------------------------------------------------------------


def test_claims_decodes_iss_sub_aud():
    found = token.claims(make_token())
    assert found["iss"] == ISSUER
    assert found["sub"] == SUBJECT
    assert found["aud"] == ["sts.amazonaws.com"]


def test_claims_handles_every_missing_padding_length():
    residues = set()
    for extra in range(8):
        jwt = make_token(pad="x" * extra)
        assert "=" not in jwt
        residues.add(len(jwt.split(".")[1]) % 4)
        found = token.claims(jwt)
        assert found is not None, extra
        assert found["pad"] == "x" * extra
        assert found["sub"] == SUBJECT
    assert residues >= {0, 2, 3}  # 1 is impossible for base64 without padding


def test_claims_accepts_padded_payloads():
    body = base64.urlsafe_b64encode(json.dumps({"sub": SUBJECT, "p": "ab"}).encode()).decode()
    assert body.endswith("=")
    assert token.claims("e30.%s.sig" % body) == {"sub": SUBJECT, "p": "ab"}


def _segment(raw):
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


@pytest.mark.parametrize(
    "value",
    [
        "not-a-jwt",
        "",
        "a.b",
        "a.b.c.d",
        "..",
        "e30.!!!!.sig",
        "e30.@@@.sig",
        "e30.abcde.sig",
        "e30.____.sig",
        "e30.\u00e9t\u00e9.sig",
        "e30.%s.sig" % _segment(b"\xff\xfe{}"),
        "e30.%s.sig" % _segment(b'{"unterminated'),
    ],
)
def test_claims_of_a_non_jwt_is_none(value):
    assert token.claims(value) is None


@pytest.mark.parametrize("payload", [b"[1, 2]", b"null", b'"sub"', b"42", b"true"])
def test_claims_of_a_non_object_payload_is_none(payload):
    assert token.claims("e30.%s.sig" % _segment(payload)) is None


# -- what a token path must not be (issue 10) --------------------------------


@pytest.mark.skipif(not hasattr(os, "mkfifo"), reason="needs os.mkfifo")
def test_a_fifo_is_refused_at_once_not_read(tmp_path):
    import time

    path = str(tmp_path / "token")
    os.mkfifo(path)
    started = time.monotonic()
    err, message = read_error(path)  # a blocking open would wait for a writer forever
    assert time.monotonic() - started < 1.0
    assert "is a FIFO (named pipe), not a regular file" in message


@pytest.mark.skipif(not os.path.exists("/dev/zero"), reason="needs /dev/zero")
def test_a_device_is_refused_without_reading_it():
    err, message = read_error("/dev/zero")
    assert "is a character device, not a regular file" in message


def test_a_file_over_64_kib_is_refused(tmp_path):
    path = tmp_path / "token"
    path.write_bytes(b"e" * (64 * 1024 + 1))
    err, message = read_error(str(path))
    assert "larger than 64 KiB" in message
    path.write_bytes(b"e" * (64 * 1024))
    assert len(token.read(str(path))) == 64 * 1024


def test_a_utf8_byte_order_mark_is_not_sent(tmp_path):
    jwt = make_token()
    path = tmp_path / "token"
    path.write_bytes(b"\xef\xbb\xbf" + jwt.encode() + b"\n")
    assert token.read(str(path)) == jwt


def test_a_reader_hook_is_still_bounded(tmp_path):
    path = tmp_path / "token"
    path.write_bytes(b"x" * (200 * 1024))
    sizes = []

    class Handle(object):
        def __init__(self, name, mode):
            self.handle = open(name, mode)

        def __enter__(self):
            return self

        def __exit__(self, *exc):
            self.handle.close()

        def read(self, size=-1):
            sizes.append(size)
            return self.handle.read(size)

    err, message = read_error(str(path), _open=Handle)
    assert sizes == [64 * 1024 + 1] and "larger than 64 KiB" in message
