"""Sphinx configuration: Markdown pages (MyST), the Furo theme, the API from docstrings.

Built by ``./dev docs`` (nox's ``docs`` session) in strict mode: a warning (a broken
link, a missing page, a reference to a name that does not exist) fails the build.
"""

import os
import sys

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)

import irsa_session  # noqa: E402

project = "irsa-session"
author = "the irsa-session authors"
copyright = "2026, " + author
release = version = irsa_session.__version__

extensions = [
    "myst_parser",
    "sphinx.ext.autodoc",
    "sphinx.ext.napoleon",
    "sphinxcontrib.mermaid",
]
myst_enable_extensions = ["colon_fence"]
myst_heading_anchors = 3
myst_fence_as_directive = ["mermaid"]
source_suffix = {".md": "markdown"}
exclude_patterns = ["_build"]
root_doc = "index"

html_theme = "furo"
html_title = "irsa-session"

autodoc_member_order = "bysource"
autodoc_typehints = "description"
napoleon_google_docstring = True
napoleon_numpy_docstring = False
nitpicky = True
# Names from other projects' docs, which are not fetched (no network when building).
nitpick_ignore_regex = [
    ("py:class", r"(boto3|botocore|aiobotocore|pyarrow|typing|collections\.abc)(\..*)?"),
]
# What the public functions return: internal classes, described in their docstrings.
nitpick_ignore = [("py:class", name) for name in (
    "sessions.Session", "ChainSession", "Credentials", "Session", "Endpoint", "Event",
    "RefreshableCredentials",
)]


def _pictures():
    """Write the pictures' Mermaid sources that depend on the refresh rules, from the
    code's own constants, so that a change of the rules changes the pictures."""
    from irsa_session import _refresh

    life = 3600
    advisory, mandatory = _refresh.windows(life)
    jitter_end = advisory - (advisory - mandatory) * _refresh.JITTER_SHARE
    minute = lambda seconds: "%g min" % (seconds / 60.0)  # noqa: E731
    timeline = "\n".join([
        "flowchart LR",
        '    issued["issued: STS or the agent<br/>(credentials live %s)"]' % minute(life),
        '    fresh["fresh: every call gets them<br/>from memory, no lock"]',
        '    advisory["advisory window opens<br/>%s to %s before expiry<br/>(a random moment per set)"]'
        % (minute(advisory), minute(jitter_end)),
        '    background["one refresh on the background thread;<br/>callers keep the current credentials;<br/>'
        'a failed try waits a cooldown (at most %s)"]' % minute(_refresh._COOLDOWN),
        '    mandatory["mandatory window: %s before expiry<br/>callers wait for one shared refresh"]'
        % minute(mandatory),
        '    expiry["expiry"]',
        "    issued --> fresh --> advisory --> background",
        "    background -- new credentials --> fresh",
        "    background -- every try failed --> mandatory --> expiry",
    ])
    folder = os.path.join(os.path.dirname(os.path.abspath(__file__)), "how")
    with open(os.path.join(folder, "timeline.mmd"), "w") as handle:
        handle.write(timeline + "\n")


def _flags():
    """Write every subcommand's --help, from the parser itself, for reference/cli.md."""
    import argparse
    import io

    import importlib

    cli = importlib.import_module("irsa_session.cli.main")

    parser = cli._parser()
    os.environ["COLUMNS"] = "100"
    sections = []
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for name, command in action.choices.items():
                out = io.StringIO()
                command.print_help(out)
                sections.append("### `irsa-session %s`\n\n```text\n%s```\n" % (name, out.getvalue()))
    folder = os.path.join(os.path.dirname(os.path.abspath(__file__)), "reference")
    with open(os.path.join(folder, "flags.inc"), "w") as handle:
        handle.write("\n".join(sections))


_pictures()
_flags()
