"""``python -m shared.contract ensure``: create the registry's missing topics on the configured broker;
``strimzi``: the topics as Strimzi resources; ``reference [--check]``: the contract's JSON Schemas,
AsyncAPI document and reference page (``shared.contract.reference``)."""

import sys

from shared.contract.topics import main

if __name__ == "__main__":
    raise SystemExit(main(sys.argv))
