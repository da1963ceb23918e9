"""Command-line tools: ``thinker`` (run, ...) and, later, ``tpacker``."""
