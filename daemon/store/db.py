"""Engines, sessions and schema upgrades.

Error contract: ``open_store`` returns an engine whose schema is at the latest migration, or
raises ``StoreError`` with one actionable line (the URL with its password masked, and what went
wrong). Nothing here creates tables outside Alembic.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from alembic import command
from alembic.config import Config as AlembicConfig
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import event, text
from sqlalchemy.engine import Engine, make_url
from sqlalchemy.exc import ArgumentError, OperationalError, SQLAlchemyError
from sqlalchemy.pool import StaticPool
from sqlmodel import Session, create_engine

from daemon.store.errors import StoreError

logger = logging.getLogger(__name__)

MIGRATIONS_DIR = Path(__file__).parent / "migrations"


def resolve_url(db: str | None, config_path: Path | None) -> str:
    """Turn ``--db`` (a file path or a SQLAlchemy URL) into a URL.

    ``None`` means ``tcowatch.db`` beside the config file (or in the working directory).
    """
    if db is None:
        base = config_path.resolve().parent if config_path is not None else Path.cwd()
        return f"sqlite:///{base / 'tcowatch.db'}"
    if "://" in db:
        return db
    return f"sqlite:///{Path(db).expanduser().resolve()}"


def masked(url: str) -> str:
    """The URL with any password replaced by ``***``, safe for logs and errors."""
    try:
        return make_url(url).render_as_string(hide_password=True)
    except ArgumentError:
        return "<unparseable database URL>"


def _sqlite_pragmas(busy_timeout_ms: int) -> Any:
    def on_connect(dbapi_connection: Any, _record: Any) -> None:
        cursor = dbapi_connection.cursor()
        cursor.execute("PRAGMA journal_mode=WAL")
        cursor.execute(f"PRAGMA busy_timeout={int(busy_timeout_ms)}")
        cursor.execute("PRAGMA foreign_keys=ON")
        cursor.execute("PRAGMA synchronous=NORMAL")
        cursor.close()

    return on_connect


def make_engine(url: str, *, busy_timeout_seconds: float = 5.0) -> Engine:
    """Create the process's one engine for ``url`` (SQLite gets WAL and a busy timeout)."""
    try:
        parsed = make_url(url)
    except ArgumentError:
        raise StoreError(f"not a database URL or file path: {url!r}") from None
    if parsed.get_backend_name() == "sqlite":
        kwargs: dict[str, Any] = {"connect_args": {"check_same_thread": False}}
        if parsed.database in (None, "", ":memory:"):
            kwargs["poolclass"] = StaticPool
        else:
            folder = Path(parsed.database or ".").expanduser().resolve().parent
            if not folder.is_dir():
                raise StoreError(
                    f"cannot open {masked(url)}: folder {folder} does not exist; "
                    "create it or pass --db with another path"
                )
        engine = create_engine(url, **kwargs)
        event.listen(engine, "connect", _sqlite_pragmas(int(busy_timeout_seconds * 1000)))
        return engine
    try:
        return create_engine(url, pool_pre_ping=True)
    except (ImportError, ArgumentError, SQLAlchemyError) as exc:
        raise StoreError(f"cannot use {masked(url)}: {exc}") from None


def _alembic_config(engine: Engine) -> AlembicConfig:
    cfg = AlembicConfig()
    cfg.set_main_option("script_location", str(MIGRATIONS_DIR))
    cfg.attributes["engine"] = engine
    return cfg


def head_revision() -> str | None:
    """The newest migration shipped with this version."""
    script = ScriptDirectory.from_config(_alembic_config_from_dir())
    return script.get_current_head()


def _alembic_config_from_dir() -> AlembicConfig:
    cfg = AlembicConfig()
    cfg.set_main_option("script_location", str(MIGRATIONS_DIR))
    return cfg


def current_revision(engine: Engine) -> str | None:
    """The migration the database is at (``None`` for an empty database)."""
    with engine.connect() as connection:
        return MigrationContext.configure(connection).get_current_revision()


def upgrade(engine: Engine, revision: str = "head") -> None:
    """Run Alembic migrations up to ``revision``; ``StoreError`` on any failure."""
    try:
        command.upgrade(_alembic_config(engine), revision)
    except OperationalError as exc:
        raise StoreError(_describe_operational(engine, exc)) from None
    except SQLAlchemyError as exc:
        raise StoreError(f"cannot upgrade {masked(str(engine.url))}: {exc}") from None


def _describe_operational(engine: Engine, exc: OperationalError) -> str:
    detail = str(exc.orig).strip().splitlines()[0] if exc.orig is not None else str(exc)
    return f"cannot reach the database {masked(str(engine.url))}: {detail}"


def check_connection(engine: Engine) -> None:
    """Open one connection; ``StoreError`` with the cause when the database is unreachable."""
    try:
        with engine.connect() as connection:
            connection.execute(text("SELECT 1"))
    except OperationalError as exc:
        raise StoreError(_describe_operational(engine, exc)) from None
    except SQLAlchemyError as exc:
        raise StoreError(f"cannot use {masked(str(engine.url))}: {exc}") from None


def open_store(url: str, *, busy_timeout_seconds: float = 5.0, migrate: bool = True) -> Engine:
    """Create the engine, check it answers, and bring the schema to the latest migration."""
    engine = make_engine(url, busy_timeout_seconds=busy_timeout_seconds)
    check_connection(engine)
    if migrate:
        before = current_revision(engine)
        upgrade(engine)
        after = current_revision(engine)
        if before != after:
            logger.info("database %s migrated from %s to %s", masked(url), before, after)
    return engine


def readiness_problems(engine: Engine) -> list[str]:
    """Why the store is not ready (unreachable, or schema behind); empty when ready."""
    try:
        current = current_revision(engine)
    except SQLAlchemyError as exc:
        return [f"database unreachable: {type(exc).__name__}"]
    head = head_revision()
    if current != head:
        return [f"database schema at {current}, expected {head}: run `tcowatch db upgrade`"]
    return []


@contextmanager
def session_scope(engine: Engine) -> Iterator[Session]:
    """A session that commits on success and rolls back on error."""
    with Session(engine, expire_on_commit=False) as session:
        try:
            yield session
            session.commit()
        except BaseException:
            session.rollback()
            raise
