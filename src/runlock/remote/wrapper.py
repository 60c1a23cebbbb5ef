"""``runlock run -- CMD`` against a team server (``RUNLOCK_SERVER``).

The wrapper captures the lock here (the command is its entry point), creates the run on the
server, and starts the command with ``RUNLOCK_RUN_ID`` and ``RUNLOCK_SERVER`` set (and no
``RUNLOCK_STORE``), so the script's ``current_run()`` or ``start_run`` joins that run
(``runlock.api``): it logs as rank 0 through its own spool, tells the server what it says about
itself (``POST /runs/{id}/adopt``: config, seed, seeding report, name and project unless the
command line fixed them), and ships every point when it exits. When the command has exited, the
wrapper ships whatever its spool still holds (a script killed before it could: the spool is on
disk, ``remote.spool.drain``) and seals the run from the exit status; a run whose points could
not all be sent is sealed ``failed`` with ``lost_points``, as locally.
"""

from __future__ import annotations

import os
import warnings
from collections.abc import Callable

from runlock.errors import InvalidInput
from runlock.remote.client import Client, Refused
from runlock.remote.credentials import SERVER_ENV, TOKEN_ENV
from runlock.remote.run import create_remote_run
from runlock.remote.spool import drain
from runlock.tracking.run import ENV_RUN_ID
from runlock.tracking.wrapper import (DEFAULT_PROJECT, WRITERS_WAIT_S, CommandResult, command_env, hashseed_set,
                                      run_child)


def _only_project(client: Client) -> str | None:
    """The project the token may create runs in, when there is exactly one and no ``*`` grant."""
    roles = (client.whoami().get("roles") or {})
    writable = [p for p, role in roles.items() if role in ("editor", "maintainer", "admin")]
    return writable[0] if len(writable) == 1 and writable[0] != "*" else None


def run_remote_command(client: Client, argv: list[str], *, project: str | None = None, name: str | None = None,
                       hashseed: int | None = None, seed: int | None = None,
                       on_start: Callable[[str], None] | None = None, stdout: int | None = None) -> CommandResult:
    """Run ``argv`` as a run on the server ``client`` talks to; ``on_start(run_id)`` is called
    once the run exists, before the command starts."""
    env, context = command_env(argv, hashseed, project=project, name=name)
    # the run exists before the script names its project: in the one project the token may
    # write to, when it has just one, else in DEFAULT_PROJECT (the script's start_run renames it)
    where = project or _only_project(client) or DEFAULT_PROJECT
    try:
        with hashseed_set(env, hashseed):
            record, _ = create_remote_run(client, where, name, seed=seed, argv=argv, context=context)
    except Refused as e:
        if project is None:
            raise Refused(e.message, hint=f"The run is created before the script names its project, in "
                          f"{where!r}: name a project you may write to, `runlock run --project NAME "
                          "-- ...`.") from None
        raise
    run_id = record["id"]
    if on_start is not None:
        on_start(run_id)
    env.pop("RUNLOCK_STORE", None)      # the command logs to the server, not to a store here
    env.update({ENV_RUN_ID: run_id, SERVER_ENV: client.url, **({TOKEN_ENV: client.token} if client.token else {})})
    try:
        rc = run_child(argv, env, stdout)
    except InvalidInput as e:
        client.finish_run(run_id, "failed", e.message)
        raise
    with warnings.catch_warnings():     # the result says what was lost
        warnings.simplefilter("ignore", RuntimeWarning)
        lost = drain(client, run_id, WRITERS_WAIT_S)
    error = None if rc == 0 else f"Command exited with status {rc}."
    if lost:
        error = (f"{lost} metric points logged by the command could not be sent to the server; they are kept "
                 f"in the spool ({os.environ.get('RUNLOCK_SPOOL_DIR') or '~/.cache/runlock/spool'})."
                 + (f"\n\n{error}" if error else ""))
    rec = client.finish_run(run_id, "finished" if rc == 0 else "failed", error, lost)
    return CommandResult(run_id, rc, rec["status"], rec.get("recipe_id"),
                         int((rec.get("context") or {}).get("lost_points") or 0), rec.get("error"))
