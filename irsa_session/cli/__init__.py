"""The command line: ``irsa-session doctor | credential-process | env | trust-policy``.

``doctor`` tells what is wrong with IRSA in this process and never prints a
secret; ``credential-process`` and ``env`` exist to print credentials;
``trust-policy`` prints the role trust policy that admits service accounts.
Standard library and boto3 only, in Python 3.7 syntax, so it runs in old images.
"""

__all__ = ["main", "doctor", "trust_policy", "issuer_host"]

from .commands import issuer_host, trust_policy
from .doctor import doctor  # the function: it hides the submodule of that name
from .main import main

from .doctor import _skew  # noqa: F401  (tests/test_cli.py calls it)
