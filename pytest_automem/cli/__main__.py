"""``python -m pytest_automem.cli`` runs the ``automem`` command."""

import sys

from . import main

sys.exit(main())
