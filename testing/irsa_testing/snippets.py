"""Run every Python and shell snippet of a Markdown page, in order, as a reader would.

    python -m irsa_testing.snippets PAGE.md

Snippets are found and run by Sybil: ```` ```python ```` blocks share one namespace
per page; ```` ```sh ```` blocks run in bash (``-e -u -o pipefail``) in the current
folder.  ``<!-- skip: next "why" -->`` before a block skips it, saying why (a
block that needs a Kubernetes cluster or real AWS).  Prints one line per snippet;
exits 1 at the first that fails, with its error.  The environment (stand-ins for
STS and S3) is the caller's: tests/test_docs.py sets it up.
"""

import subprocess
import sys
import traceback
from pathlib import Path
from unittest import SkipTest

__all__ = ["parsers", "run"]


def _shell(example):
    done = subprocess.run(["bash", "-euo", "pipefail", "-c", example.parsed])
    if done.returncode != 0:
        raise AssertionError("the shell snippet exited %d" % done.returncode)


def parsers():
    from sybil.parsers.markdown import CodeBlockParser, PythonCodeBlockParser, SkipParser

    return [PythonCodeBlockParser(), CodeBlockParser(language="sh", evaluator=_shell), SkipParser()]


def run(path):
    """Run the page's snippets; (ran, skipped, failed) counts."""
    from sybil import Sybil

    document = Sybil(parsers()).parse(Path(path))
    ran = skipped = 0
    for example in document:
        if isinstance(example.parsed, tuple):
            example.evaluate()  # a skip directive: sets up the skip
            continue
        where = "%s:%d" % (path, example.line)
        try:
            example.evaluate()
        except SkipTest as skip:
            skipped += 1
            print("skipped %s: %s" % (where, skip), flush=True)
            continue
        except BaseException:
            print("FAILED %s" % where, flush=True)
            traceback.print_exc()
            return ran, skipped, 1
        ran += 1
        print("ok %s" % where, flush=True)
    return ran, skipped, 0


def main():
    ran, skipped, failed = run(sys.argv[1])
    print("%d ran, %d skipped, %d failed" % (ran, skipped, failed))
    sys.exit(1 if failed else 0)


if __name__ == "__main__":
    main()
