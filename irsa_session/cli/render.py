"""Findings, the doctor's report of them, and times as the CLI prints them."""

import json
import re
import time

__all__ = [
    "OK", "WARN", "FAIL", "INFO", "SKIPPED",
    "finding", "header", "render", "verdict", "utc", "span", "until", "cli_words",
]

OK, WARN, FAIL, INFO, SKIPPED = "ok", "warn", "fail", "info", "skipped"


#: The library's argument names in its messages, and the command line's flags for them.
_FLAGS = (
    ("role_arn", "--role-arn"), ("token_file", "--token-file"), ("region_name", "--region"),
    ("sts_endpoint_url", "--sts-endpoint-url"), ("external_id", "--external-id"),
)


def cli_words(text):
    """``text`` (a library message) with its argument names as the command line's flags:
    ``role_arn`` and ``role_arn=`` become ``--role-arn``, ``role_arn='x'`` ``--role-arn 'x'``."""
    if not text:
        return text
    for name, flag in _FLAGS:
        text = re.sub(r"\b%s=(?=['\"\w-])" % name, flag + " ", text)
        text = re.sub(r"\b%s=?(?![\w=])" % name, flag, text)
    return text


def finding(check, status, detail, fix=None, **fields):
    """One finding of the doctor: a dict of ``check``, ``status``, ``detail``, ``fix`` and ``fields``."""
    found = {"check": check, "status": status, "detail": cli_words(detail), "fix": cli_words(fix)}
    found.update(fields)
    return found


def header(versions):
    return (
        "irsa-session doctor: irsa_session %(irsa_session)s, boto3 %(boto3)s, "
        "botocore %(botocore)s, Python %(python)s\n\n" % versions
    )


def render(found):
    """``found`` as lines of text: its status, check and detail, then its fix."""
    indent = " " * 11
    lines = found["detail"].split("\n")
    out = ["%-10s %s: %s\n" % ("[%s]" % found["status"], found["check"], lines[0])]
    if "statement" in found:
        lines += json.dumps(found["statement"], indent=2).split("\n")
    if found["fix"]:
        fixes = found["fix"].split("\n")
        lines += ["fix: " + fixes[0]] + ["     " + fix for fix in fixes[1:]]
    out.extend(indent + line + "\n" for line in lines[1:])
    return "".join(out)


def verdict(findings, ok):
    if ok:
        pod_identity = any(found["check"].startswith("pod-identity") for found in findings)
        return "\nOK: %s works in this process.\n" % ("EKS Pod Identity" if pod_identity else "IRSA")
    failed = [found["check"] for found in findings if found["status"] == FAIL]
    return "\nPROBLEMS: %s failed.\n" % ", ".join(failed)


def utc(epoch):
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(epoch))


def span(seconds):
    """'45 s', '59 min', '23 h 53 min'."""
    seconds = int(abs(seconds))
    if seconds < 120:
        return "%d s" % seconds
    minutes = seconds // 60
    if minutes < 120:
        return "%d min" % minutes
    return "%d h %d min" % (minutes // 60, minutes % 60)


def until(epoch, now=None):
    left = epoch - (time.time() if now is None else now)
    return "in %s" % span(left) if left >= 0 else "%s ago" % span(left)
