"""What the examples share: their command line, and a connected client (`dendrite_client`, the
library in clients/python; `pip install -e clients/python`).

Every example takes `--url` (default $DENDRITE_URL or http://127.0.0.1:8000) and `--key`
(default $DENDRITE_API_KEY; leave it out when the server runs with DENDRITE_AUTH_ENABLED=false).
"""

import argparse
import os
from pathlib import Path

from dendrite_client import Dendrite

DATA = Path(__file__).resolve().parent.parent / "tests" / "data"


def arguments(description: str) -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(description=description)
    parser.add_argument("--url", default=os.environ.get("DENDRITE_URL", "http://127.0.0.1:8000"))
    parser.add_argument(
        "--key",
        default=os.environ.get("DENDRITE_API_KEY"),
        help="API key (default: $DENDRITE_API_KEY)",
    )
    parser.add_argument(
        "--quick",
        action="store_true",
        help="tiny epochs and repeats: checks the flow, not the numbers",
    )
    return parser


def connect(args: argparse.Namespace) -> Dendrite:
    return Dendrite(args.url, args.key, timeout=120)
