"""Code run in another process: a fresh interpreter, or a forked child that reports back.

Standard library only, and Python 3.7 syntax.
"""

__all__ = ["run_python", "lines_of", "in_child", "in_flight"]

import os
import select
import subprocess
import sys
import threading
import time


def run_python(code, env=None, stdin=None, timeout=120, cwd=None):
    """Run ``code`` in a fresh interpreter that imports what this one does; return stdout bytes.

    ``env`` changes this process's environment for the child (a value of None
    removes a variable); ``cwd`` is the folder it runs in.  A non-zero exit fails
    with the child's stderr and stdout.
    """
    full_env = dict(os.environ)
    for name, value in (env or {}).items():
        if value is None:
            full_env.pop(name, None)
        else:
            full_env[name] = value
    paths = [p for p in sys.path if p and os.path.isdir(p)]
    full_env["PYTHONPATH"] = os.pathsep.join(paths)
    result = subprocess.run(
        [sys.executable, "-c", code],
        input=stdin,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        env=full_env,
        timeout=timeout,
        cwd=cwd,
    )
    if result.returncode != 0:
        raise AssertionError("child exited %d:\n%s\n%s" % (
            result.returncode, result.stderr.decode(errors="replace"), result.stdout.decode(errors="replace")))
    return result.stdout


def lines_of(code, env=None):
    """What ``code`` printed in a fresh interpreter (see :func:`run_python`), as lines."""
    return run_python(code, env=env).decode().strip().splitlines()


def in_child(work, seconds=20, during=None):
    """Run ``work()`` in a forked child; return what it wrote, or None if it hung.

    ``during``: a thread from :func:`in_flight`; its call must still be
    unanswered when the fork is made (checked in the parent just after it).
    """
    read_end, write_end = os.pipe()
    pid = os.fork()
    if pid == 0:
        try:
            os.write(write_end, str(work()).encode())
        except BaseException as err:  # reported to the parent, which asserts on it
            os.write(write_end, ("error %s: %s" % (type(err).__name__, err)).encode())
        finally:
            os._exit(0)
    mid_call = during is None or during.call["answered"] is None
    os.close(write_end)
    ready, _, _ = select.select([read_end], [], [], seconds)
    if not ready:
        os.kill(pid, 9)
    os.waitpid(pid, 0)
    text = os.read(read_end, 1000).decode() if ready else None
    os.close(read_end)
    assert mid_call, "the call in flight was answered before the fork: the test proves nothing"
    return text


def in_flight(server, target, seconds=20):
    """Start ``target()`` in a thread; return the thread once ``server`` holds its call unanswered.

    For forking mid-refresh: the server (a FakeSTS or FakeAgent with a ``delay``)
    has received the call and not answered it, so the thread is inside the
    refresh, holding whatever locks it takes.  ``thread.call`` is that call's
    record: a test asserts ``thread.call["answered"] is None`` right after
    ``os.fork()`` to show the fork came mid-call.  Fails if no call arrives.
    """
    before = server.call_count
    thread = threading.Thread(target=target, daemon=True)
    thread.start()
    deadline = time.monotonic() + seconds
    while server.call_count == before:
        assert time.monotonic() < deadline, "no call reached %s" % type(server).__name__
        time.sleep(0.005)
    thread.call = server.calls[before]
    return thread
