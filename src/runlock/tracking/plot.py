"""Metric curves of several runs in one PNG: one panel per key, one line per run.

Uses matplotlib's object API with the Agg canvas (no pyplot, no global backend switch, no
display needed); matplotlib is the optional ``plot`` extra.
"""

from __future__ import annotations

import difflib
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Protocol

from runlock.errors import InvalidInput, NotFound
from runlock.store import Store
from runlock.tracking import records, series


class Source(Protocol):
    """Where the curves come from: a store here (``StoreSource``), or any ``remote.interface.Service``
    (a team server's client draws from what the server sends)."""

    def run_record(self, ref: str) -> records.RunRecord: ...

    def short_ids(self, ids: list[str]) -> dict[str, str]: ...

    def metric_points(self, ref: str, *, keys: list[str] | None = None, rank: int | None = None) -> Iterable: ...

    def metric_summaries(self, ref: str, *, rank: int | None = None) -> list: ...


@dataclass(frozen=True)
class StoreSource:
    store: Store

    def run_record(self, ref: str) -> records.RunRecord:
        return records.get(self.store, ref)

    def short_ids(self, ids: list[str]) -> dict[str, str]:
        return records.short_ids(self.store, ids)

    def metric_points(self, ref: str, *, keys: list[str] | None = None, rank: int | None = None) -> Iterable:
        return series.points(self.store, ref, keys=keys, rank=rank)

    def metric_summaries(self, ref: str, *, rank: int | None = None) -> list:
        return series.summarize(self.store, ref, rank=rank)


@dataclass(frozen=True)
class Curve:
    run_id: str
    key: str
    points: int
    max_abs_diff: float | None = None   # largest |difference| from the key's first drawn run, at shared steps
    identical: bool | None = None       # every step and value equal to the first drawn run

@dataclass(frozen=True)
class PlotResult:
    path: str
    curves: list[Curve]
    warnings: list[str] = field(default_factory=list)   # keys no run logged, runs with no points

    def to_dict(self) -> dict:
        return {"path": self.path, "curves": [c.__dict__ for c in self.curves], "warnings": self.warnings}


def plot_metrics(store: Store | Source, refs: Sequence[str], keys: Sequence[str], out: str | Path, *,
                 rank: int = 0, title: str | None = None) -> PlotResult:
    """Draw ``keys`` of every run in ``refs`` into the PNG ``out`` (from a store, or from any
    ``Source``)."""
    src: Source = StoreSource(store) if isinstance(store, Store) else store
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
    recs = [src.run_record(r) for r in refs]
    short = src.short_ids([r.id for r in recs])
    fig = Figure(figsize=(7, 3.2 * len(keys)), layout="constrained")
    axes = fig.subplots(len(keys), 1, squeeze=False)[:, 0]
    curves = []
    for ax, key in zip(axes, keys):
        drawn: list[tuple[str, dict[int, float]]] = []
        for rec in recs:
            pts = list(src.metric_points(rec.id, keys=[key], rank=rank))
            gap, same = None, None
            if pts:
                # the first run is a line, the others markers over it, so identical curves stay visible
                style = {"linewidth": 1.4} if not drawn else {
                    "linestyle": "none", "marker": _MARKERS[(len(drawn) - 1) % len(_MARKERS)],
                    "markersize": 4, "markevery": max(1, len(pts) // 60), "fillstyle": "none"}
                ax.plot([p.step for p in pts], [p.value for p in pts], label=f"{rec.name} ({short[rec.id]})", **style)
                values = {p.step: p.value for p in pts}
                if drawn:
                    gap, same = _difference(drawn[0][1], values)
                drawn.append((rec.name, values))
            curves.append(Curve(rec.id, key, len(pts), gap, same))
        if len(drawn) > 1:
            notes = [f"{name} vs {drawn[0][0]}: max |Δ| = {c.max_abs_diff:.3g}" + (" (identical)" if c.identical else "")
                     for (name, _), c in zip(drawn[1:], [c for c in curves if c.key == key and c.identical is not None])]
            ax.text(0.99, 0.97, "\n".join(notes), transform=ax.transAxes, ha="right", va="top", fontsize=8,
                    bbox={"boxstyle": "round", "fc": "white", "alpha": 0.8})
        empty = [rec for rec in recs if not any(c.run_id == rec.id and c.key == key and c.points for c in curves)]
        if empty:
            names = ", ".join(f"{r.name} ({short[r.id]})" for r in empty)
            ax.text(0.01, 0.97 if drawn else 0.5, f"no points: {names}", transform=ax.transAxes, fontsize=8,
                    va="top" if drawn else "center", color="firebrick")
        ax.set_title(key, fontsize=10)
        ax.set_xlabel("step")
        ax.set_ylabel(key)
        ax.grid(alpha=0.3)
        if ax.get_legend_handles_labels()[0]:
            ax.legend(fontsize=8, loc="lower left")
    if not any(c.points for c in curves):
        raise NotFound("metric", ", ".join(keys), hint=_suggest(src, recs, keys) +
                       "List a run's metrics with `runlock metrics RUN`.")
    warnings = _warnings(src, recs, keys, curves, short)
    if title:
        fig.suptitle(title)
    try:
        out.parent.mkdir(parents=True, exist_ok=True)
        FigureCanvasAgg(fig).print_png(str(out), metadata={"Software": None})
    except OSError as e:
        raise InvalidInput(f"Cannot write {out}: {e.strerror}.") from None
    return PlotResult(str(out), curves, warnings)


def _warnings(src: Source, recs: list, keys: Sequence[str], curves: list[Curve], short: dict[str, str]) -> list[str]:
    """What the picture leaves out: a key no run logged (an empty panel), runs without points."""
    out = []
    for key in keys:
        missing = [r for r in recs if not any(c.run_id == r.id and c.key == key and c.points for c in curves)]
        if len(missing) == len(recs):
            out.append(f"no run logged {key!r}; its panel is empty. " + _suggest(src, recs, [key]).strip())
        elif missing:
            out.append(f"{key!r}: no points from " + ", ".join(f"{r.name} (run:{short[r.id]})" for r in missing))
    return [w.strip() for w in out]


def _suggest(src: Source, recs: list, keys: Sequence[str]) -> str:
    known = sorted({s.key for r in recs for s in src.metric_summaries(r.id)})
    close = [m for k in keys for m in difflib.get_close_matches(k, known, n=1)]
    if close:
        return f"Did you mean {', '.join(map(repr, dict.fromkeys(close)))}? "
    return f"The runs logged {', '.join(map(repr, known[:8]))}{' …' if len(known) > 8 else ''}. " if known else ""


_MARKERS = ("o", "x", "s", "^", "+", "D")


def _difference(first: dict[int, float], other: dict[int, float]) -> tuple[float, bool]:
    """The largest |difference| at the steps both runs logged, and whether the series are equal
    (same steps, same values, NaN equal to NaN)."""
    shared = first.keys() & other.keys()
    gap = max((abs(first[s] - other[s]) for s in shared if first[s] == first[s] and other[s] == other[s]),
              default=0.0 if shared else float("nan"))
    same = first.keys() == other.keys() and all(
        first[s] == other[s] or (first[s] != first[s] and other[s] != other[s]) for s in shared)
    return gap, same
