"""The store: a metadata database and an object store, found like git finds ``.git``.

Layout of a local store::

    .runlock/
      config.toml     where the metadata and the objects live (defaults: the two below)
      runlock.db      SQLite metadata (WAL)
      objects/        content-addressed objects, ab/cdef…

Nothing in it is world-readable (``store/perms.py``): files 0640, folders 0750, or group-writable
with ``shared = true`` (``runlock init --shared``). A PostgreSQL password is never written to
``config.toml``: ``init_store`` refuses a URL that holds one, and the driver (libpq) finds it in
``PGPASSWORD``, ``~/.pgpass`` or a service file.

``init_store`` creates one and migrates its schema; ``Store.open`` only reads the configuration,
so opening never changes anything. ``migrate`` is the one function that changes the schema.
"""

from __future__ import annotations

import ast
import functools
import importlib
import json
import os
import pwd
import shutil
import tomllib
from dataclasses import dataclass, field
from pathlib import Path

import sqlalchemy as sa

from runlock.errors import Conflict, InvalidInput, StoreError, StoreNotFound
from runlock.store.db import Database
from runlock.store.objects import LocalObjectStore, ObjectStore
from runlock.store.perms import Modes, chmod
from runlock.store.schema import METADATA, store_info, utcnow

DIRNAME = ".runlock"
ENV_VAR = "RUNLOCK_STORE"
_MIGRATIONS = Path(__file__).parent / "migrations"

__all__ = ["Store", "init_store", "locate", "migrate", "local_user", "DIRNAME", "ENV_VAR", "METADATA"]


def local_user() -> str:
    """The OS account of the effective uid: never ``$USER`` or ``$LOGNAME``, which anyone can set."""
    uid = os.geteuid()
    try:
        return pwd.getpwuid(uid).pw_name
    except KeyError:
        return f"uid-{uid}"


@dataclass
class Store:
    root: Path
    db: Database
    objects: ObjectStore
    settings: dict = field(default_factory=dict)
    actor: str = field(default_factory=lambda: local_user())

    @classmethod
    def open(cls, path: str | Path | None = None, *, check_schema: bool = True) -> "Store":
        root = locate(path)
        settings = _read_settings(root)
        store = cls(root=root, db=Database(_db_url(root, settings)),
                    objects=_objects(root, settings), settings=settings)
        if check_schema:
            store.check_schema()
        return store

    @property
    def modes(self) -> Modes:
        return Modes(shared=bool(self.settings.get("shared")))

    def info(self) -> dict[str, str]:
        with self.db.read() as conn:
            return {r.key: r.value for r in conn.execute(sa.select(store_info))}

    def check_schema(self) -> None:
        current, heads = schema_revisions(self.db)
        if not current:
            _refuse_emptied(self)
            raise StoreError(f"The store at {self.root} has no schema.",
                             hint="Run `runlock init` there to create it.")
        if current != heads:
            raise StoreError(f"The store at {self.root} has an older schema than this runlock.",
                             hint="Run `runlock migrate` to upgrade it.")

    def close(self) -> None:
        self.db.dispose()


def locate(path: str | Path | None = None) -> Path:
    """The ``.runlock`` folder named by ``path``, else RUNLOCK_STORE, else the nearest one upward."""
    given = path if path is not None else os.environ.get(ENV_VAR)
    if given:
        p = Path(given).expanduser().resolve()
        for candidate in (p, p / DIRNAME):
            if (candidate / "config.toml").is_file():
                return candidate
        raise StoreNotFound(str(p))
    start = Path.cwd().resolve()
    for d in (start, *start.parents):
        if (d / DIRNAME / "config.toml").is_file():
            return d / DIRNAME
    raise StoreNotFound(str(start))


def init_store(path: str | Path = ".", *, database: str | None = None, objects: str | None = None,
               shared: bool = False) -> Store:
    """Create ``PATH/.runlock`` (or reuse an existing one) and bring its schema up to date.

    ``shared`` makes the store group-writable (files 0660, folders 2770) for several accounts of
    the store folder's group; it is recorded in ``config.toml`` and kept from then on."""
    base = Path(path).expanduser().resolve()
    if not base.is_dir():
        raise InvalidInput(f"{base} is not a directory.", hint="Create it first, or pick another path.")
    root = base if base.name == DIRNAME else base / DIRNAME
    if database is not None:
        check_database_url(database)
        refuse_inline_password(database)
    if objects is not None and not objects.startswith("s3://"):
        raise InvalidInput(f"Unsupported object location {objects!r}.", hint="Use s3://BUCKET/PREFIX, or omit it "
                           "for the local objects/ folder.")
    config = root / "config.toml"
    modes = Modes(shared=shared)
    created = _claim(root, modes)   # a failed init removes the folder only if this call made it
    try:
        try:
            if not config.exists() or _never_worked(root):
                modes.write_file(root / ".gitignore", b"# a runlock store is data, not source\n*\n")
                text = "# runlock store configuration\n"
                text += f"database = {json.dumps(database)}\n" if database else ""   # a TOML basic string
                text += f"objects = {json.dumps(objects)}\n" if objects else ""
                text += "shared = true\n" if shared else ""
                modes.write_file(config, text.encode())
            else:
                _refuse_other_location(root, database, objects)
                if shared and not _read_settings(root).get("shared"):
                    modes.write_file(config, config.read_bytes().rstrip(b"\n") + b"\nshared = true\n")
            settings = _read_settings(root)
            refuse_inline_password(_db_url(root, settings))
            _apply_modes(root, settings, Modes(shared=bool(settings.get("shared"))))
        except OSError as e:
            raise StoreError(f"Cannot create a store in {root}: {e.strerror}.") from e
        store = Store.open(root, check_schema=False)
        try:
            with store.db.exclusive("runlock init"):   # clients initialising one database take turns
                if not schema_revisions(store.db)[0]:
                    _refuse_emptied(store)
                migrate(store.db)
                _write_info(store)
        except BaseException:
            store.close()
            raise
    except BaseException:
        if created:
            shutil.rmtree(root, ignore_errors=True)
        raise
    return store


def _claim(root: Path, modes: Modes) -> bool:
    """Create the store folder; True if this call created it (False: it was there already)."""
    try:
        root.mkdir()
    except FileExistsError:
        return False
    except OSError as e:
        raise StoreError(f"Cannot create a store in {root}: {e.strerror}.") from e
    chmod(root, modes.dir)
    return True


def check_database_url(url: str) -> None:
    """Refuse a metadata database URL that cannot work, before anything is created for it."""
    hint = "Use sqlite:////ABSOLUTE/PATH.db or postgresql+psycopg://USER@HOST/DB."
    try:
        parsed = sa.engine.make_url(url)
    except (sa.exc.ArgumentError, ValueError):
        raise InvalidInput(f"{url!r} is not a database URL.", hint=hint) from None
    backend = parsed.get_backend_name()
    if backend not in ("sqlite", "postgresql"):
        raise InvalidInput(f"Unsupported database {backend!r} in {url!r}.", hint=hint)
    if backend == "sqlite" and parsed.database in (None, "", ":memory:"):
        raise InvalidInput(f"{url!r} names no database file; an in-memory database would be lost at exit.",
                           hint=hint)
    if backend == "sqlite" and not os.path.isabs(parsed.database):
        raise InvalidInput(f"{url!r} names a relative path, which would mean another file in another folder.",
                           hint=hint)


def _never_worked(root: Path) -> bool:
    """True for a half-made store whose config.toml names a database URL that cannot work (an
    init that failed before this check existed): it never held a record, so init may rewrite it."""
    url = _read_settings(root).get("database")
    try:
        if url is not None:
            check_database_url(str(url))
    except InvalidInput:
        return True
    return False


def _refuse_other_location(root: Path, database: str | None, objects: str | None) -> None:
    settings = _read_settings(root)
    for key, given in (("database", database), ("objects", objects)):
        if given is not None and settings.get(key) != given:
            raise Conflict(f"The store at {root} already keeps its {key} at "
                           f"{settings.get(key) or 'the default place'}; init does not move it.",
                           hint=f"Leave out --{key}, or init a new store in another folder.")


def _refuse_emptied(store: Store) -> None:
    """A SQLite store that has a signing key had a schema: an empty database there was truncated
    or replaced, and re-creating it would silently start an empty record."""
    keys = store.root / "keys"
    if store.db.is_sqlite and keys.is_dir() and any(keys.iterdir()):
        path = sa.engine.make_url(store.db.url).database
        raise StoreError(f"The metadata database {path} is empty, but this store was initialised (it has a "
                         "signing key): the database file was truncated or replaced.",
                         hint="Restore it from a backup; `runlock init` will not start an empty record over it.")


def refuse_inline_password(url: str) -> None:
    """Refuse a database URL that carries a password: it would be written to ``config.toml``."""
    try:
        parsed = sa.engine.make_url(url)
    except sa.exc.ArgumentError:
        return   # not parseable: the engine reports it with a clear message
    if parsed.password is not None or "password" in parsed.query:
        raise InvalidInput(
            "The database URL holds a password; runlock never writes a password to config.toml.",
            hint="Drop it from the URL (postgresql+psycopg://USER@HOST/DB) and give it to libpq instead: "
                 "PGPASSWORD, a line HOST:PORT:DB:USER:PASSWORD in ~/.pgpass (mode 0600), or a service "
                 "file (PGSERVICEFILE, then ?service=NAME in the URL).")


def _apply_modes(root: Path, settings: dict, modes: Modes) -> None:
    """Give the store's own folders and files their modes (a repair for older stores, too)."""
    for d in (root, root / "tmp", root / "cache", *(() if str(settings.get("objects", "objects")).startswith("s3://")
                                    else (root / settings.get("objects", "objects"),
                                          root / settings.get("objects", "objects") / "tmp"))):
        if d.is_dir():
            chmod(d, modes.dir)
        else:
            modes.make_dir(d)
    objects = root / settings.get("objects", "objects")
    if not str(settings.get("objects", "")).startswith("s3://") and objects.is_dir():
        for sub in objects.iterdir():
            if len(sub.name) == 2 and sub.is_dir():
                chmod(sub, modes.dir)
                for f in sub.iterdir():
                    chmod(f, modes.object)
    for f in (root / "config.toml", root / ".gitignore"):
        if f.is_file():
            chmod(f, modes.file)
    if not settings.get("database"):
        db = root / "runlock.db"
        modes.create_file(db)       # SQLite gives its -wal and -shm files the database file's mode
        for side in (db.with_name("runlock.db-wal"), db.with_name("runlock.db-shm")):
            if side.is_file():
                chmod(side, modes.file)


def migrate(db: Database) -> None:
    """Upgrade the schema to every head revision (one per feature branch)."""
    from alembic import command  # heavy (~0.2 s): only the commands that migrate load it
    from alembic.config import Config

    with db.write() as conn:
        cfg = Config()
        cfg.set_main_option("script_location", str(_MIGRATIONS))
        cfg.attributes["connection"] = conn
        command.upgrade(cfg, "heads")


def schema_revisions(db: Database) -> tuple[set[str], frozenset[str]]:
    """(revisions applied to the database, head revisions this runlock ships), without alembic:
    every command checks the schema on opening, and only ``migrate`` needs alembic itself."""
    with db.read() as conn:
        if not sa.inspect(conn).has_table(_VERSION_TABLE.name):
            return set(), shipped_heads()
        current = set(conn.execute(sa.select(_VERSION_TABLE.c.version_num)).scalars())
    return current, shipped_heads()


# alembic's own record of the applied revisions (one row per head), read as a plain table
_VERSION_TABLE = sa.table("alembic_version", sa.column("version_num", sa.String))


@functools.cache
def shipped_heads() -> frozenset[str]:
    """The head revisions of the migration scripts: those no other script names as its parent.
    Read from the scripts' ``revision`` / ``down_revision`` lines as alembic does (a test checks
    that both agree), once per process: they are part of this installed runlock."""
    revisions: set[str] = set()
    parents: set[str] = set()
    for path in (_MIGRATIONS / "versions").glob("*.py"):
        found = _assignments(path, ("revision", "down_revision"))
        if "revision" in found:
            revisions.add(found["revision"])
            down = found.get("down_revision")
            parents.update([down] if isinstance(down, str) else down or ())
    return frozenset(revisions - parents)


def _assignments(path: Path, names: tuple[str, ...]) -> dict:
    out = {}
    for node in ast.parse(path.read_text(encoding="utf-8")).body:
        if isinstance(node, (ast.Assign, ast.AnnAssign)):
            targets = node.targets if isinstance(node, ast.Assign) else [node.target]
            for t in targets:
                if isinstance(t, ast.Name) and t.id in names and node.value is not None:
                    out[t.id] = ast.literal_eval(node.value)
    return out


def _write_info(store: Store) -> None:
    from ulid import ULID   # only `init` needs it; importing it reads package metadata (every command paid it)

    def fill(conn: sa.Connection) -> None:
        have = {r.key for r in conn.execute(sa.select(store_info.c.key))}
        fresh = {"store_id": str(ULID()), "created_at": utcnow(), "created_by": local_user()}
        rows = [{"key": k, "value": v} for k, v in fresh.items() if k not in have]
        if rows:
            conn.execute(store_info.insert(), rows)

    store.db.run_write(fill)


def _read_settings(root: Path) -> dict:
    try:
        return tomllib.loads((root / "config.toml").read_text())
    except (OSError, tomllib.TOMLDecodeError) as e:
        raise StoreError(f"Cannot read {root / 'config.toml'}: {e}.",
                         hint="Fix the file or run `runlock init` in a fresh directory.") from e


def _db_url(root: Path, settings: dict) -> str:
    return settings.get("database") or f"sqlite:///{root / 'runlock.db'}"


def _objects(root: Path, settings: dict) -> ObjectStore:
    location = settings.get("objects", "objects")
    if location.startswith("s3://"):
        s3 = importlib.import_module("runlock.store.s3")  # optional extra: loaded only when configured
        return s3.S3ObjectStore(location, endpoint_url=settings.get("s3_endpoint_url"), scratch=root / "tmp")
    return LocalObjectStore(root / location, Modes(shared=bool(settings.get("shared"))))
