"""``python -m experiments ...`` is the ``lipschitz-lr`` command."""

import sys

from .cli import main

sys.exit(main())
