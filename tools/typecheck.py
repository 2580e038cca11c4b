"""Type-check the public API: the package and a user's code pass, mistakes are caught.

    python tools/typecheck.py        (needs mypy; the tests-newest-3.11 row runs it)

1. mypy on ``irsa_session`` and ``tests/typecheck/public_api.py`` finds nothing;
2. mypy on ``tests/typecheck/misuse.py`` reports an error on each of its mistakes.
Settings are ``[tool.mypy]`` in pyproject.toml.  Exits 1 if either fails.
"""

import os
import re
import subprocess
import sys

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
TYPECHECK = os.path.join("tests", "typecheck")


def mypy(*paths):
    done = subprocess.run(
        [sys.executable, "-m", "mypy"] + list(paths), cwd=ROOT,
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT, universal_newlines=True,
    )
    return done.returncode, done.stdout


def main():
    status, out = mypy("irsa_session", os.path.join(TYPECHECK, "public_api.py"))
    print(out.strip())
    if status != 0:
        print("typecheck: the package or public_api.py has type errors")
        return 1
    misuse = os.path.join(TYPECHECK, "misuse.py")
    with open(os.path.join(ROOT, misuse)) as handle:
        mistakes = [n for n, line in enumerate(handle, 1) if re.match(r"^\w.*\(.*\)  # ", line)]
    _, out = mypy(misuse)
    caught = set(int(n) for n in re.findall(r"misuse\.py:(\d+): error", out))
    missed = [n for n in mistakes if n not in caught]
    print("misuse.py: %d of %d mistakes caught" % (len(mistakes) - len(missed), len(mistakes)))
    if missed or not mistakes:
        print("typecheck: mypy accepted misuse.py line(s) %s" % missed)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
