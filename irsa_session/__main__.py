"""``python -m irsa_session``: the command line, as the ``irsa-session`` script."""

import sys

from .cli import main

if __name__ == "__main__":
    sys.exit(main())
