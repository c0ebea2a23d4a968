"""``python -m pytest_automem …`` is the ``automem`` command (no PATH needed)."""

import sys

from .cli import main

sys.exit(main())
