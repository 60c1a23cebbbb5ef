"""``runlock config``: resolve layered config files and explain where a run's values came from."""

from __future__ import annotations

from pathlib import Path

import typer

from runlock import config as configs
from runlock.cli import common
from runlock.cli.service import service

app = typer.Typer(help="Layered configuration: resolve files and overrides; explain a run's config.",
                  no_args_is_help=True)


@app.command("explain")
def explain(ctx: typer.Context, run: str = typer.Argument(..., help="Run id (or a unique prefix)."),
            as_json: bool = common.JSON_OPTION) -> None:
    """Show each key of a run's config, its value, and the file or override that set it."""
    result = configs.explain(service(ctx), run)
    common.emit(result, as_json, _render_explain)


def _render_explain(e: configs.Explanation) -> None:
    common.console.print(common.table(f"config of run:{e.run_id}", ["key", "value", "set by"],
                                      [(k.key, common.to_jsonable(k.value), k.origin) for k in e.keys]))
    for s in e.sources:
        common.console.print(f"  {s['label']}  {s['digest'] or ''}", highlight=False)


@app.command("resolve")
def resolve(
    files: list[Path] = typer.Argument(None, help="Config files (YAML or JSON), lowest priority first."),
    overrides: list[str] = typer.Option(None, "--set", help="Override KEY=VALUE (repeat), e.g. lora.r=16."),
    as_json: bool = common.JSON_OPTION,
) -> None:
    """Merge config files and overrides as a run would, and show where each value comes from."""
    result = configs.resolve(files or [], overrides or [])
    common.emit(result, as_json, lambda r: common.console.print(common.table(
        f"resolved config {r.digest}", ["key", "value", "set by"],
        [(k, common.to_jsonable(v), r.origins.get(k, "")) for k, v in r.leaves().items()])))
