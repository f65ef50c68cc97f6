"""``python -m knockout``: the same command line as the ``knockout`` script."""

import sys

from .cli import main

sys.exit(main())
