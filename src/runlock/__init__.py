"""runlock: reproducible, auditable ML runs. See README.md for the tour."""

__version__ = "0.1.0"
