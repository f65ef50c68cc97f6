"""``python -m knockout``: the same command line as the ``knockout`` script."""

from .cli import run

run()
