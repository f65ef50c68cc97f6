"""The knockout watch-folder daemon, installed as ``knockout.daemon``."""
