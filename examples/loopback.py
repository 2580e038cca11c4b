"""A stand-in for EKS on 127.0.0.1, for the examples (a real pod has none of this).

``LoopbackPod`` writes a JWT-shaped token, starts a fake STS and moto's server as
S3 on loopback, and runs an example's driver in a child process with the
variables the pod identity webhook sets; afterwards it searches what the driver
saved and printed for secrets.  ray_legacy.py, ray_seed_script.py,
ray_current.py and aws_cli.py use it.
"""

import json
import os
import sys
import tempfile
import time


class LoopbackPod(object):
    """Plays EKS for one driver run: a token, STS and S3 on 127.0.0.1, the pod's variables.

    STS is irsa_testing's FakeSTS (it counts calls and remembers every secret it
    issued, with ``credential_life``-second credentials); S3 is moto's server
    (``IRSA_TEST_MOTO_SERVER``, else ``moto_server`` on PATH).
    """

    def __init__(self, credential_life=3600):
        self.credential_life = credential_life
        self.started = time.time()
        self.folder = tempfile.mkdtemp(prefix="irsa-example-")
        self.marker = os.urandom(8).hex()
        self.env = self.token = self.sts = self.s3 = None
        self.output = ""

    def __enter__(self):
        from irsa_testing.moto import MotoServer
        from irsa_testing.servers import FakeSTS

        self.sts = FakeSTS(duration=self.credential_life).start()
        self.s3 = MotoServer().start()
        self.env = self._environment()
        print("STS (fake, %d s credentials) on %s; S3 (moto) on %s"
              % (self.credential_life, self.sts.url, self.s3.url))
        return self

    def __exit__(self, *exc_info):
        import shutil

        self.s3.stop()
        self.sts.stop()
        shutil.rmtree(self.folder, ignore_errors=True)

    def _environment(self):
        """This environment less any AWS or proxy settings, plus what the webhook sets."""
        env = {
            name: value for name, value in os.environ.items()
            if not name.startswith("AWS_")
            and name.lower() not in ("http_proxy", "https_proxy", "no_proxy")
        }
        env.update(
            AWS_ROLE_ARN="arn:aws:iam::111122223333:role/ray-reader",
            AWS_WEB_IDENTITY_TOKEN_FILE=self._write_token(),
            AWS_STS_REGIONAL_ENDPOINTS="regional",
            AWS_REGION="us-west-2",
            AWS_DEFAULT_REGION="us-west-2",
            AWS_ENDPOINT_URL_STS=self.sts.url,  # instead of sts.us-west-2.amazonaws.com
            AWS_ENDPOINT_URL_S3=self.s3.url,  # instead of s3.us-west-2.amazonaws.com
            # No other credentials anywhere, and whatever is not for 127.0.0.1 goes to
            # a closed loopback port: nothing leaves this machine, even by mistake.
            AWS_CONFIG_FILE=os.path.join(self.folder, "no-config"),
            AWS_SHARED_CREDENTIALS_FILE=os.path.join(self.folder, "no-credentials"),
            AWS_EC2_METADATA_DISABLED="true",
            HTTP_PROXY="http://127.0.0.1:9",
            HTTPS_PROXY="http://127.0.0.1:9",
            NO_PROXY="127.0.0.1,localhost",
            no_proxy="127.0.0.1,localhost",
            RAY_USAGE_STATS_ENABLED="0",
            IRSA_EXAMPLE_CREDENTIAL_LIFE=str(self.credential_life),
            IRSA_EXAMPLE_RUN=self.marker,
        )
        return env

    def _write_token(self):
        """A token shaped like the one EKS projects (unsigned: the fake STS does not check)."""
        from irsa_testing.tokens import make_token, write_token

        self.token = make_token(exp_in=86400, sub="system:serviceaccount:ray:ray-worker")
        return write_token(self.folder, self.token)

    def run(self, script, timeout=480):
        """Run ``script --driver FOLDER`` as the pod's driver; return its exit code (or why not).

        Afterwards no process of the run may be left (Ray's included): any that
        is still there after 15 s is killed by pid and reported as a problem.
        """
        import subprocess

        try:
            done = subprocess.run(
                [sys.executable, os.path.abspath(script), "--driver", self.folder],
                env=self.env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, timeout=timeout,
            )
            code, output = done.returncode, done.stdout
        except subprocess.TimeoutExpired as err:
            code, output = "timed out after %d s" % timeout, err.output or b""
        self.output = output.decode("utf-8", "replace")
        self.left = self._reap()
        return code

    def _leftovers(self):
        needle = ("IRSA_EXAMPLE_RUN=%s" % self.marker).encode()
        found = []
        for pid in os.listdir("/proc") if os.path.isdir("/proc") else []:
            if not pid.isdigit() or int(pid) == os.getpid():
                continue
            try:
                with open("/proc/%s/environ" % pid, "rb") as handle:
                    if needle in handle.read().split(b"\0"):
                        found.append(int(pid))
            except OSError:
                pass
        return found

    def _reap(self, grace=15.0):
        deadline = time.time() + grace
        while self._leftovers() and time.time() < deadline:
            time.sleep(0.5)
        left = self._leftovers()
        for pid in left:
            try:
                os.kill(pid, 9)
            except OSError:
                pass
        return left

    def result(self):
        """What the driver saved in result.json ({} if nothing)."""
        path = os.path.join(self.folder, "result.json")
        if not os.path.exists(path):
            return {}
        with open(path) as handle:
            return json.load(handle)

    def assume_calls(self):
        """The AssumeRoleWithWebIdentity calls STS received."""
        return [call for call in self.sts.calls if call["action"] == "AssumeRoleWithWebIdentity"]

    def issued_keys(self):
        return {creds["access_key"] for creds in self.sts.issued}

    def leaks(self):
        """(where, what) for every issued key, secret or session token, or the token,
        found in the pickles the driver saved; secrets and the token in its output too."""
        blobs = {}
        pickles = os.path.join(self.folder, "pickles")
        for name in sorted(os.listdir(pickles)) if os.path.isdir(pickles) else []:
            with open(os.path.join(pickles, name), "rb") as handle:
                blobs["pickle " + name] = handle.read()
        self.pickles = dict(blobs)
        blobs["driver output"] = self.output.encode()
        needles = [("token", self.token)]
        for creds in self.sts.issued:
            needles += [
                ("access key", creds["access_key"]),
                ("secret key", creds["secret_key"]),
                ("session token", creds["session_token"]),
            ]
        self.needles = needles
        return [
            (name, kind)
            for name, blob in blobs.items()
            for kind, needle in needles
            # the access key id is no secret: the driver's own output may show it
            if needle.encode() in blob and not (kind == "access key" and name == "driver output")
        ]

    def pickle_figures(self, leaks):
        return "%d blobs, %d bytes searched for %d keys, secrets and session tokens, and the token: %d found" % (
            len(self.pickles), sum(len(blob) for blob in self.pickles.values()),
            len(self.needles) - 1, len(leaks),
        )

    def check_pickles(self, leaks, problems):
        """Print what was searched; a problem if the driver saved no pickles or anything leaked."""
        print("pickles:     %s" % self.pickle_figures(leaks))
        if not self.pickles:
            problems.append("the driver saved no pickles to search")
        if leaks:
            problems.append("secrets in what Ray pickled or the driver printed: %s" % leaks)

    def verdict(self, problems, code):
        """Print the wall time and the problems (with the driver's output); return the exit code."""
        if code != 0:
            problems.insert(0, "the driver exited with %s" % code)
        if self.left:
            problems.append("processes left running after ray.shutdown(): %s" % self.left)
        print("wall time:   %.1f s" % (time.time() - self.started))
        if problems or "-v" in sys.argv:
            print("---- driver output ----\n%s\n----" % self.output.rstrip())
        for problem in problems:
            print("FAILED: %s" % problem)
        if not problems:
            print("all checks passed")
        return 1 if problems else 0
