"""Which row of the test matrix this is, and what it must have installed.

The noxfile names the row in ``IRSA_TEST_ROW``.  A row whose job is to run a
test module must not turn a broken import into skips: there :func:`need`
imports and fails; elsewhere it skips, as ``pytest.importorskip`` does.
"""

__all__ = ["ROW", "need"]

import importlib
import os

import pytest

ROW = os.environ.get("IRSA_TEST_ROW", "")


def need(name, rows):
    """The module ``name``; a skip where it is missing, unless this row is one of ``rows``.

    ``rows`` are row names or prefixes ending in ``-`` (``"examples-"``).
    """
    if any(ROW == row or (row.endswith("-") and ROW.startswith(row)) for row in rows):
        try:
            return importlib.import_module(name)
        except ImportError as err:
            pytest.fail("row %s must import %s for these tests: %s" % (ROW, name, err), pytrace=False)
    return pytest.importorskip(name)
