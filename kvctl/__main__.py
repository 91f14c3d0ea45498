"""`python -m kvctl ...` runs kvctl."""

import sys

from kvctl.main import main

if __name__ == "__main__":
    sys.exit(main())
