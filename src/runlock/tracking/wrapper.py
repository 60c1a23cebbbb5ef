"""``runlock run -- CMD``: run an existing script as a recorded run.

The wrapper starts the run (its lock's entry point is the command), starts the command with
``RUNLOCK_RUN_ID`` and ``RUNLOCK_STORE`` set so the script can log through
``runlock.current_run()`` (or ``start_run``, which joins: one run per process, see
``runlock.tracking.run.join_wrapper``), and seals the run from the exit code once every process
that logged to it has reported that its points are stored (``runlock.tracking.writers``): a
command that exits 0 but whose metrics are incomplete ends ``failed``.

The run's name and project come from the command line when it gives them (``--name``,
``--project``), else from the script's ``start_run``; the record's ``context["wrapper"]["fixed"]``
says which the command line fixed. ``hashseed`` starts the command with ``PYTHONHASHSEED`` set,
the only way it takes effect.
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import warnings
from collections.abc import Callable, Iterator
from dataclasses import asdict, dataclass

from runlock import seeding
from runlock.errors import InvalidInput
from runlock.store import Store
from runlock.tracking import records
from runlock.tracking.run import ENV_RUN_ID, Run, create_run

DEFAULT_PROJECT = "default"
WRITERS_WAIT_S = 60.0   # how long the seal waits for a process still logging after the command exited


@dataclass(frozen=True)
class CommandResult:
    run_id: str
    returncode: int
    status: str
    recipe_id: str | None = None
    lost_points: int = 0
    error: str | None = None

    def to_dict(self) -> dict:
        return asdict(self)


def run_command(store: Store, argv: list[str], *, project: str | None = None, name: str | None = None,
                hashseed: int | None = None, config: dict | None = None, seed: int | None = None,
                extra_env: dict[str, str] | None = None, on_start: Callable[[Run], None] | None = None,
                stdout: int | None = None, cwd: str | os.PathLike | None = None,
                on_exit: Callable[[Run, int], None] | None = None) -> CommandResult:
    """Run ``argv`` as a recorded run; ``on_start(run)`` is called once the run exists, before
    the command starts; ``stdout`` (a file descriptor) takes the command's standard output;
    ``cwd``: the folder the command starts in; ``on_exit(run, returncode)`` is called before the
    run is sealed (to log outputs); an error it raises seals the run failed."""
    env, context = command_env(argv, hashseed, project=project, name=name, cwd=cwd)
    with hashseed_set(env, hashseed):
        run = create_run(store, project or DEFAULT_PROJECT, name, config=config, seed=seed, argv=argv,
                         context=context)
    if on_start is not None:
        on_start(run)
    env.pop("RUNLOCK_SERVER", None)     # the command logs to this store, not to a server
    env.update({ENV_RUN_ID: run.id, "RUNLOCK_STORE": str(store.root), **(extra_env or {})})
    try:
        rc = run_child(argv, env, stdout, cwd)
    except InvalidInput as e:
        run.finish("failed", e.message)
        raise
    if on_exit is not None:
        try:
            on_exit(run, rc)
        except BaseException as e:
            run.finish("failed", f"After the command: {e}")
            raise
    with warnings.catch_warnings():   # a run sealed failed for lost points: the result says so
        warnings.simplefilter("ignore", RuntimeWarning)
        run.finish("finished" if rc == 0 else "failed", None if rc == 0 else f"Command exited with status {rc}.",
                   timeout=WRITERS_WAIT_S)
    rec = records.get(store, run.id)
    return CommandResult(run.id, rc, rec.status, rec.recipe_id, int(rec.context.get("lost_points") or 0),
                         rec.error)


def command_env(argv: list[str], hashseed: int | None, *, project: str | None, name: str | None,
                cwd: str | os.PathLike | None = None) -> tuple[dict[str, str], dict]:
    """The command's environment (``PYTHONHASHSEED`` set for ``hashseed``, no run id inherited)
    and the run record's context (which of project and name the command line fixed)."""
    if not argv:
        raise InvalidInput("No command given.", hint="Use `runlock run -- python train.py ...`.")
    env = dict(os.environ)
    if hashseed is not None:
        env = seeding.hashseed_environ(hashseed, env)
        env[seeding.HASHSEED_ENV] = str(hashseed)   # what seed_everything checks the hash seed against
    env.pop(ENV_RUN_ID, None)
    fixed = [k for k, given in (("project", project), ("name", name)) if given]
    return env, {"wrapper": {"fixed": fixed}, **({"cwd": os.path.abspath(cwd)} if cwd else {})}


@contextlib.contextmanager
def hashseed_set(env: dict[str, str], hashseed: int | None) -> Iterator[None]:
    """``PYTHONHASHSEED`` as the command will have it, while its run's lock is captured here."""
    if hashseed is None:
        yield
        return
    saved = os.environ.get("PYTHONHASHSEED")
    os.environ["PYTHONHASHSEED"] = env["PYTHONHASHSEED"]  # recorded in the lock's environment
    try:
        yield
    finally:
        _restore("PYTHONHASHSEED", saved)



def run_child(argv: list[str], env: dict[str, str], stdout: int | None = None,
              cwd: str | os.PathLike | None = None) -> int:
    """Start the command and wait for it (Ctrl-C is passed on to it); its exit status."""
    try:
        proc = subprocess.Popen(argv, env=env, stdout=stdout, cwd=cwd)
    except OSError as e:
        raise InvalidInput(f"Could not start {argv[0]!r}: {e.strerror}.") from None
    try:
        return proc.wait()
    except KeyboardInterrupt:
        proc.send_signal(signal.SIGINT)
        return proc.wait()


def _restore(key: str, value: str | None) -> None:
    if value is None:
        os.environ.pop(key, None)
    else:
        os.environ[key] = value
