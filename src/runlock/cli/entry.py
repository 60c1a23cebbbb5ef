"""The ``runlock`` executable. ``runlock --version`` is answered here, before the command tree and
typer are loaded (it is what scripts and bug reports call most); everything else goes to the
command tree in ``main.py``, loaded by name only for that reason."""

from __future__ import annotations

import sys
from importlib import import_module

from runlock._version import __version__


def main() -> None:
    if sys.argv[1:] == ["--version"]:
        sys.stdout.write(f"runlock {__version__}\n")
        return
    import_module("runlock.cli.main").main()
