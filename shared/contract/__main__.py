"""``python -m shared.contract ensure``: create the registry's missing topics on the configured broker."""

import sys

from shared.contract.topics import main

if __name__ == "__main__":
    raise SystemExit(main(sys.argv))
