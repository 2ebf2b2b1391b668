"""`python -m queuectl` is the same program as `queuectl`."""

import sys

from .cli import main

if __name__ == "__main__":
    sys.exit(main())
