"""The one leak scanner every test uses: which secrets are in play, and every form they take.

A secret can reach a text whole, URL-encoded (a form body, a URL, a botocore
DEBUG record of one), or in part (a message that quotes the first fifty
characters, a JWT's payload alone).  :func:`forms` lists what to look for;
:func:`leaks` says which of them a text holds; :func:`assert_clean` fails
without printing the secret.  :func:`secrets_of` gathers the secrets the
stand-ins handed out or received.

Standard library only, and Python 3.7 syntax.
"""

__all__ = ["secrets_of", "forms", "leaks", "assert_clean", "PIECE"]

import urllib.parse

#: Length of the pieces of a secret that are looked for on their own.
PIECE = 16


def secrets_of(*servers, **extra):
    """Every secret in play at ``servers`` (FakeSTS, ChainSTS, FakeAgent...).

    The token each call carried (a web identity token, an agent's authorization
    token), and the secret key and session token of everything issued; plus
    ``tokens=[...]`` given, and the contents of ``token_files=[...]``.
    """
    found = [token for token in extra.get("tokens", ()) if token]
    for path in extra.get("token_files", ()):
        with open(path) as handle:
            found.append(handle.read().strip())
    for server in servers:
        for call in server.calls:
            if call.get("token"):
                found.append(call["token"])
        for creds in server.issued:
            found += [creds["secret_key"], creds["session_token"]]
    unique = []
    for secret in found:
        if secret not in unique:
            unique.append(secret)
    return unique


def forms(secret):
    """``[(name, text)]``: the forms of ``secret`` a leak could take."""
    found = [("whole", secret)]
    for name, encoded in (
        ("URL-encoded", urllib.parse.quote(secret, safe="")),
        ("URL-encoded (path)", urllib.parse.quote(secret)),
        ("form-encoded", urllib.parse.quote_plus(secret)),
    ):
        found.append((name, encoded))
    parts = secret.split(".")
    if len(parts) == 3 and secret.startswith("eyJ"):
        secret_parts = parts[1:]  # a JWT's header is the same for every token: not secret
    else:
        secret_parts = [secret]
    for part in secret_parts:
        if len(part) < PIECE:
            continue
        for start in sorted({0, (len(part) - PIECE) // 2, len(part) - PIECE}):
            found.append(("a piece at %d" % start, part[start:start + PIECE]))
    unique = []
    for name, text in found:
        if text not in [seen for _, seen in unique]:
            unique.append((name, text))
    return unique


def _as_text(text):
    if isinstance(text, bytes):
        return text.decode("latin-1")
    return text if isinstance(text, str) else repr(text)


def leaks(texts, secrets):
    """``[(index of the text, what leaked)]``, the secret itself never in the description."""
    found = []
    checks = [(secret, forms(secret)) for secret in secrets]
    for index, text in enumerate(texts):
        text = _as_text(text)
        for secret, shapes in checks:
            for name, shape in shapes:
                if shape in text:
                    found.append((index, "%s of a secret starting %s..." % (name, secret[:4])))
                    break
    return found


def assert_clean(texts, secrets, what="texts"):
    """Fail if any of ``texts`` (str, bytes or anything with a repr) holds any form of ``secrets``."""
    assert secrets, "nothing to look for: the test gathered no secret"
    texts = list(texts)
    found = leaks(texts, secrets)
    assert not found, "a secret leaked into %s: %s" % (
        what, "; ".join("text %d: %s" % pair for pair in found[:5])
    )
