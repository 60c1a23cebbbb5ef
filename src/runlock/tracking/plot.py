"""Metric curves of several runs in one PNG: one panel per key, one line per run.

Uses matplotlib's object API with the Agg canvas (no pyplot, no global backend switch, no
display needed); matplotlib is the optional ``plot`` extra.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from runlock.errors import InvalidInput, NotFound
from runlock.store import Store
from runlock.tracking import records, series


@dataclass(frozen=True)
class Curve:
    run_id: str
    key: str
    points: int


@dataclass(frozen=True)
class PlotResult:
    path: str
    curves: list[Curve]

    def to_dict(self) -> dict:
        return {"path": self.path, "curves": [c.__dict__ for c in self.curves]}


def plot_metrics(store: Store, refs: Sequence[str], keys: Sequence[str], out: str | Path, *,
                 rank: int = 0, title: str | None = None) -> PlotResult:
    """Draw ``keys`` of every run in ``refs`` into the PNG ``out``."""
    if not refs or not keys:
        raise InvalidInput("Name at least one run and one --key to plot.")
    out = Path(out)
    if out.suffix.lower() != ".png":
        raise InvalidInput(f"{out} does not end in .png; plots are written as PNG.")
    try:
        from matplotlib.backends.backend_agg import FigureCanvasAgg
        from matplotlib.figure import Figure
    except ModuleNotFoundError:
        raise InvalidInput("Plotting needs matplotlib, which is not installed.",
                           hint="Install it with `pip install 'runlock[plot]'`.") from None
    recs = [records.get(store, r) for r in refs]
    fig = Figure(figsize=(7, 3.2 * len(keys)), layout="constrained")
    axes = fig.subplots(len(keys), 1, squeeze=False)[:, 0]
    curves = []
    for ax, key in zip(axes, keys):
        for rec in recs:
            pts = list(series.points(store, rec.id, keys=[key], rank=rank))
            if pts:
                ax.plot([p.step for p in pts], [p.value for p in pts], label=f"{rec.name} ({rec.id[-6:]})",
                        linewidth=1.2)
            curves.append(Curve(rec.id, key, len(pts)))
        ax.set_title(key, fontsize=10)
        ax.set_xlabel("step")
        ax.grid(alpha=0.3)
        if ax.get_legend_handles_labels()[0]:
            ax.legend(fontsize=8)
    if not any(c.points for c in curves):
        raise NotFound("metric", ", ".join(keys), hint="List a run's metrics with `runlock metrics RUN`.")
    if title:
        fig.suptitle(title)
    try:
        out.parent.mkdir(parents=True, exist_ok=True)
        FigureCanvasAgg(fig).print_png(str(out), metadata={"Software": None})
    except OSError as e:
        raise InvalidInput(f"Cannot write {out}: {e.strerror}.") from None
    return PlotResult(str(out), curves)
