"""Sub-commands of the ``knockout`` command line, one module each."""
