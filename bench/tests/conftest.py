"""The harness's modules live side by side in bench/ (run as scripts): put that folder on sys.path."""

import sys
from pathlib import Path

BENCH = str(Path(__file__).resolve().parent.parent)
if BENCH not in sys.path:
    sys.path.insert(0, BENCH)
