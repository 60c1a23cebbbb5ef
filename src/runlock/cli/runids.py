"""Run ids as tables show them: the shortest unique prefix (at least 8 characters, as git shortens
commit ids), which every command accepts back; ``--wide`` shows them whole."""

from __future__ import annotations

from typing import TYPE_CHECKING

import typer

from runlock.store import Store
from runlock.tracking import records

if TYPE_CHECKING:
    from runlock.remote.interface import Service

WIDE_OPTION = typer.Option(False, "--wide", help="Show full run ids (default: the shortest unique prefix, "
                                                 "at least 8 characters, which every command accepts).")


def labels(store: Store, ids: list[str], wide: bool) -> dict[str, str]:
    """``{run_id: what a table shows}``."""
    return {i: i for i in ids} if wide else records.short_ids(store, ids)


def shown(svc: Service, ids: list[str], wide: bool) -> dict[str, str]:
    """``labels`` from a ``Service`` (a folder here or a team server)."""
    return {i: i for i in ids} if wide else svc.short_ids(ids)
