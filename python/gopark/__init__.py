"""gopark: why a Go program's goroutines pile up or leak, and why its memory grows.

The public Python API mirrors the CLI; see the README for examples.
"""

__version__ = "0.1.0"
