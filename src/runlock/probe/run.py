"""The run a probed program gets: ``start_run`` under ``runlock probe`` returns a ``ProbeRun``,
which records nothing in the store (a probe runs the program three times and stops it after a
few steps; none of that is a run) and feeds every ``log`` to ``record_step``."""

from __future__ import annotations

import copy
from collections.abc import Callable
from typing import Any

from runlock.probe.hooks import activate, record_step

PROBE_RUN_ID = "probe"


class ProbeRun:
    """Answers what a training script asks of a run; writes nothing anywhere."""

    owned = True
    rank = 0
    store = None
    recipe_id = None
    dropped_points = 0

    def __init__(self, project: str, name: str | None = None, *, config: Any = None, seed: int | None = None,
                 on_end: Callable[["ProbeRun"], None] | None = None) -> None:
        self.id = PROBE_RUN_ID
        self.project = project
        self.name = name or project
        self._lock: dict[str, Any] = {"config": _plain(config), "seed": seed, "seeding": None, "knobs": {},
                                      "inputs": []}
        self._ended = False
        self._auto_step = -1
        self._on_end = on_end
        activate()

    @property
    def ref(self) -> str:
        return f"run:{self.id}"

    @property
    def lineage_node(self) -> str:
        return self.ref

    @property
    def lock(self) -> dict[str, Any]:
        return copy.deepcopy(self._lock)

    @property
    def ended(self) -> bool:
        return self._ended

    def __repr__(self) -> str:
        return f"<ProbeRun {self.project}/{self.name}>"

    def log(self, values: dict[str, Any], step: int | None = None) -> None:
        step = self._auto_step + 1 if step is None else step
        self._auto_step = max(self._auto_step, step)
        record_step(step, metrics=dict(values))

    def continue_from(self, step: int) -> None:
        self._auto_step = max(self._auto_step, step)

    def use(self, thing: Any, *, path: Any = None) -> None:
        self._lock["inputs"].append(str(getattr(thing, "ref", thing)))

    def log_artifact(self, path: Any, name: str, kind: str = "artifact", metadata: dict | None = None) -> None:
        return None

    def set_summary(self, values: dict[str, Any]) -> None:
        return None

    def record_seeding(self, report: dict, seed: int | None = None) -> None:
        self._lock["seeding"] = report
        if seed is not None:
            self._lock["seed"] = seed

    def record_knobs(self, **declared: Any) -> None:
        self._lock["knobs"] = {"declared": declared}

    def record_config(self, config: Any) -> None:
        self._lock["config"] = _plain(config)

    def flush(self, timeout: float | None = None) -> None:
        return None

    def finish(self, status: str = "finished", error: str | None = None, *, timeout: float = 60) -> None:
        if not self._ended:
            self._ended = True
            if self._on_end is not None:
                self._on_end(self)

    def __enter__(self) -> "ProbeRun":
        return self

    def __exit__(self, exc_type, exc, tb) -> None:  # noqa: ANN001
        self.finish()


def _plain(config: Any) -> Any:
    """A ResolvedConfig's values; anything else as given."""
    values = getattr(config, "values", None)
    return values if values is not None and not callable(values) else config
