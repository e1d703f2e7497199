"""`python -m proxy` is `guardproxy`."""

import sys

from .cli import main

sys.exit(main())
