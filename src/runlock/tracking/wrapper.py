"""``runlock run -- CMD``: run an existing script as a recorded run.

The wrapper starts the run (its lock's entry point is the command), starts the command with
``RUNLOCK_RUN_ID`` and ``RUNLOCK_STORE`` set so the script can log through
``runlock.current_run()`` (or ``start_run``, which joins), and seals the run from the exit code.
``hashseed`` starts the command with ``PYTHONHASHSEED`` set, the only way it takes effect.
"""

from __future__ import annotations

import os
import signal
import subprocess
from dataclasses import dataclass

from runlock import seeding
from runlock.errors import InvalidInput
from runlock.store import Store
from runlock.tracking.run import ENV_RUN_ID, start_run


@dataclass(frozen=True)
class CommandResult:
    run_id: str
    returncode: int
    status: str


def run_command(store: Store, argv: list[str], *, project: str, name: str | None = None,
                hashseed: int | None = None, config: dict | None = None, seed: int | None = None,
                extra_env: dict[str, str] | None = None) -> CommandResult:
    if not argv:
        raise InvalidInput("No command given.", hint="Use `runlock run -- python train.py ...`.")
    env = dict(os.environ)
    if hashseed is not None:
        env = seeding.hashseed_environ(hashseed, env)
    env.pop(ENV_RUN_ID, None)
    saved = os.environ.get("PYTHONHASHSEED")
    if hashseed is not None:
        os.environ["PYTHONHASHSEED"] = env["PYTHONHASHSEED"]  # recorded in the lock's environment
    try:
        run = start_run(project, name, config=config, seed=seed, store=store, argv=argv)
    finally:
        if hashseed is not None:
            _restore("PYTHONHASHSEED", saved)
    env.update({ENV_RUN_ID: run.id, "RUNLOCK_STORE": str(store.root), **(extra_env or {})})
    try:
        proc = subprocess.Popen(argv, env=env)
    except OSError as e:
        run.finish("failed", f"Could not start {argv[0]}: {e.strerror}")
        raise InvalidInput(f"Could not start {argv[0]!r}: {e.strerror}.") from None
    try:
        rc = proc.wait()
    except KeyboardInterrupt:
        proc.send_signal(signal.SIGINT)
        rc = proc.wait()
    status = "finished" if rc == 0 else "failed"
    run.finish(status, None if rc == 0 else f"Command exited with status {rc}.")
    return CommandResult(run.id, rc, status)


def _restore(key: str, value: str | None) -> None:
    if value is None:
        os.environ.pop(key, None)
    else:
        os.environ[key] = value
