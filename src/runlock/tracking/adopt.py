"""What a script says about a run it joined (``runlock run`` started it): ``adopt`` changes the
running run's lock, name, project and tags in one transaction, locally (``tracking.run``) and on a
team server (``POST /runs/{id}/adopt``) alike.
"""

from __future__ import annotations

from typing import Any

from runlock import audit, canonical, seeding
from runlock.config import ResolvedConfig
from runlock.store import Store
from runlock.store.schema import runs
from runlock.tracking import fields, records
from runlock.tracking import lock as locks


def adopt(store: Store, run_id: str, *, project: str | None, name: str | None, config: Any, seed: int | None,
          tags: dict | None, seeding_report: dict | None, knobs: dict | None = None) -> tuple[dict, dict, str]:
    """Give running run ``run_id`` what the script that joined it says about itself (see
    ``join_wrapper``), in one transaction: its config replaces the lock's, its seed too when it
    gives one, a seeding report is recorded, the knobs are ``knobs`` (a team server's client
    captured them in its process) or captured here, keeping those declared before; its name and
    project replace the run's unless the command line fixed them; its tags are merged in. Returns
    ``(renamed, lock, recipe_id)``."""
    if config is not None and not isinstance(config, ResolvedConfig):
        config = canonical.normalize(config)
    tags = canonical.normalize(tags) if tags else None
    ref = f"run:{run_id}"

    def write(conn):  # noqa: ANN001, ANN202
        row = records.require_running(conn, run_id, for_update=True)
        context = dict(row.context or {})
        fixed = set((context.get("wrapper") or {}).get("fixed") or ())
        lock = locks.load(store, row.recipe_id)
        if config is not None:
            context, lock["config"] = config_context(context, lock["config"], config)
        if seed is not None:
            lock["seed"] = seed
        if seeding_report is not None:
            lock["seeding"] = canonical.normalize(seeding_report)
            if lock.get("seed") is None:
                lock["seed"] = seeding_report.get("seed")
        declared = (lock.get("knobs") or {}).get("declared") or {}
        lock["knobs"] = canonical.normalize(knobs if knobs is not None else seeding.knobs(**declared))
        values: dict[str, Any] = {"context": context}
        renamed = {}
        if name and "name" not in fixed and name != row.name:
            renamed["name"] = name
        if project and "project" not in fixed and project != row.project:
            renamed["project"] = project
        if tags:
            values["tags"] = {**(row.tags or {}), **tags}
            fields.replace_section(conn, run_id, "tags", values["tags"])
        conn.execute(runs.update().where(runs.c.id == run_id).values(**values, **renamed))
        if renamed:
            audit.append(conn, store.actor, "run.rename", ref,
                         details={"project": renamed.get("project", row.project), "name": renamed.get("name", row.name),
                                  "was": {"project": row.project, "name": row.name}})
        recipe = locks.store_lock(store, lock)
        if recipe != row.recipe_id:
            conn.execute(runs.update().where(runs.c.id == run_id).values(recipe_id=recipe))
            fields.replace_section(conn, run_id, "config", lock["config"])
            audit.append(conn, store.actor, "run.lock", ref, before=row.recipe_id, after=recipe)
        return renamed, lock, recipe

    return store.db.run_write(write)


def config_context(context: dict, old: dict, config: Any) -> tuple[dict, dict]:
    """The run context's config provenance and the lock's config values for a new config: a
    ``ResolvedConfig`` brings its provenance; keys whose value changes here no longer come from a file."""
    if isinstance(config, ResolvedConfig):
        return {**context, "config": config.provenance()}, canonical.normalize(config.values)
    new = canonical.normalize(config)
    if context.get("config"):
        before, after = fields.flatten(old), fields.flatten(new)
        origins = context["config"].get("origins") or {}
        context = {**context, "config": {**context["config"], "origins": {
            k: o for k, o in origins.items() if k in after and before.get(k) == after[k]}}}
    return context, new
