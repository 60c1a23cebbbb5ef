"""Every error runlock raises on purpose.

    RunlockError                 base; ``str(err)`` is one sentence that says what to do next
    ├── StoreNotFound            no ``.runlock/`` here or above, and no --store / RUNLOCK_STORE
    ├── StoreError               the metadata database or the object folder cannot be used
    │   └── StoreBusy            a write kept failing because the database stayed locked
    ├── NotFound                 an id, a name or a version that the store does not hold
    ├── InvalidInput             a value from the user that cannot be accepted (config, path, name)
    ├── SealedError              a write to a run that has ended
    ├── Conflict                 the write contradicts what the store already holds
    ├── IntegrityError           bytes that do not match their content id (corruption, tampering)
    └── PermissionDenied         the acting identity lacks the role for this action

Driver errors (sqlite3, psycopg, OSError, botocore) are translated into these inside the backend
that meets them, so a surface only ever has to catch ``RunlockError``.
"""

from __future__ import annotations


class RunlockError(Exception):
    """Base of every runlock error. The message is meant for a person."""

    exit_code = 1

    def __init__(self, message: str, *, hint: str | None = None) -> None:
        self.message = message
        self.hint = hint
        super().__init__(f"{message} {hint}" if hint else message)


class StoreNotFound(RunlockError):
    def __init__(self, start: str) -> None:
        super().__init__(
            f"No runlock store found in {start} or any parent directory.",
            hint="Run `runlock init` first, or pass --store / set RUNLOCK_STORE.",
        )
        self.start = start


class StoreError(RunlockError):
    pass


class StoreBusy(StoreError):
    pass


class NotFound(RunlockError):
    def __init__(self, kind: str, ref: str, *, hint: str | None = None) -> None:
        super().__init__(f"No {kind} {ref!r} in this store.", hint=hint)
        self.kind = kind
        self.ref = ref


class InvalidInput(RunlockError):
    exit_code = 2


class SealedError(RunlockError):
    def __init__(self, run_id: str, status: str) -> None:
        super().__init__(
            f"Run {run_id} has ended ({status}) and is sealed; it cannot be changed.",
            hint="Start a new run instead.",
        )
        self.run_id = run_id
        self.status = status


class Conflict(RunlockError):
    pass


class IntegrityError(RunlockError):
    def __init__(self, message: str, *, expected: str | None = None, actual: str | None = None,
                 hint: str | None = None) -> None:
        super().__init__(message, hint=hint)
        self.expected = expected
        self.actual = actual


class PermissionDenied(RunlockError):
    exit_code = 3

    def __init__(self, actor: str, action: str, target: str, needed: str) -> None:
        super().__init__(
            f"{actor} may not {action} on {target}: it needs the {needed} role.",
            hint="Ask an admin to grant it (`runlock roles grant`).",
        )
        self.actor = actor
        self.action = action
        self.target = target
        self.needed = needed
