"""``runlock demo``: the end-to-end LoRA fine-tuning demo (needs the ``demo`` extra)."""

from __future__ import annotations

from pathlib import Path

import typer

from runlock.cli import common


def demo(
    directory: Path = typer.Argument(Path("demo-out"), help="Folder to run the demo in (created)."),
    as_json: bool = typer.Option(False, "--json", help="Tell the story on stderr and print the result (runs, "
                                 "recipe ids, digests, timings, reproduced) as JSON on stdout."),
) -> None:
    """Fine-tune a tiny LoRA model twice on CPU and show that runlock proves both runs identical."""
    try:
        from runlock.demo.runner import run_demo  # torch/transformers: imported only for the demo
    except ImportError as e:
        common.err_console.print(f"[bold red]error:[/] the demo needs the 'demo' extra ({e.name} is "
                                 "missing). Install it with `pip install 'runlock[demo]'`.")
        raise typer.Exit(2) from None
    result = run_demo(directory, common.err_console if as_json else common.console)
    if as_json:
        common.print_json({"reproduced": result.reproduced, **common.to_jsonable(result)})
    raise typer.Exit(0 if result.reproduced else 1)
