"""``python -m lipschitz_lr_experiments ...`` is the ``lipschitz-lr`` command."""

import sys

from .cli import main

sys.exit(main())
