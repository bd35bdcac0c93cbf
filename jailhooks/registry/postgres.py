"""PostgreSQL registry: UID blocks unique across a fleet of jail hosts.

Leases live in one database shared by every host.  A jail's UID block is
fleet-wide and follows the jail when it moves (``jailhooks lease move``);
its FIB is per host.  Every change runs in one short transaction that first
takes a transaction-level advisory lock (writers are serialised fleet-wide),
waiting at most ``lock_timeout``; the exclusion constraint over int8range
makes the database itself refuse overlapping blocks, whatever the code does.

The schema is never migrated behind the admin's back: ``jailhooks registry
migrate`` creates or upgrades it.  A database that cannot be reached is exit
75 (temporary): up phases fail closed, down phases still tear down the
firewall and report that the registry was not updated.
"""
from __future__ import annotations

import os
from contextlib import contextmanager
from typing import Any, Iterator
from urllib.parse import urlsplit

from ..errors import PermissionDenied, ConfigError, JailhooksError, LockTimeout
from .sql import SqlRegistry

SCHEMA_VERSION = 1
MIGRATIONS = {
    1: [
        "CREATE TABLE meta (key text PRIMARY KEY, value text NOT NULL)",
        """CREATE TABLE leases (
            jail text PRIMARY KEY,
            uid_first bigint NOT NULL,
            uid_last bigint NOT NULL CHECK (uid_last >= uid_first),
            uids int8range GENERATED ALWAYS AS (int8range(uid_first, uid_last, '[]')) STORED,
            fib integer,
            fib_exclusive smallint NOT NULL DEFAULT 0 CHECK (fib_exclusive IN (0, 1)),
            host text NOT NULL,
            created double precision NOT NULL,
            CONSTRAINT leases_uids_disjoint EXCLUDE USING gist (uids WITH &&))""",
        "CREATE UNIQUE INDEX leases_uid_first ON leases (uid_first)",
        "CREATE UNIQUE INDEX leases_fib_exclusive ON leases (host, fib) WHERE fib_exclusive = 1",
        "CREATE TABLE free_uids (first bigint PRIMARY KEY, last bigint NOT NULL CHECK (last >= first))",
    ],
}
LOCK_KEY = 0x6A61696C  # "jail": the advisory lock every writer takes


def redact(url: str) -> str:
    """The URL without its password, for messages."""
    from urllib.parse import parse_qs

    parts = urlsplit(url)
    host = parts.hostname or (parse_qs(parts.query).get("host") or ["localhost"])[0]  # a Unix socket dir
    return f"{parts.scheme}://{parts.username + '@' if parts.username else ''}{host}" \
           f"{':' + str(parts.port) if parts.port else ''}{parts.path}"


class _Db:
    """execute() with the '?' placeholders the shared SQL uses."""

    def __init__(self, conn: Any):
        self.conn = conn

    def execute(self, sql: str, params: tuple = ()) -> Any:
        return self.conn.execute(sql.replace("?", "%s"), params)


class PostgresRegistry(SqlRegistry):
    fleet = True

    def __init__(self, url: str, lock_timeout: float, host_name: str = "", dry_run: bool = False,
                 check_schema: bool = True):
        self.url, self.shown = url, redact(url)
        self.lock_timeout = lock_timeout
        self.host_name = host_name or os.uname().nodename
        self.dry_run = dry_run
        self.check_schema = check_schema
        self._conn: Any = None

    # -- connection (lazy: a down phase that never touches the registry must not need it)
    @property
    def db(self) -> _Db:
        if self._conn is None:
            self._connect()
        return _Db(self._conn)

    def _connect(self) -> None:
        try:
            import psycopg
        except ImportError:
            raise ConfigError(f"registry {self.shown}: PostgreSQL needs psycopg: pip install 'jailhooks[postgres]'") \
                from None
        try:
            # a dry run stays inside one transaction that is never committed
            self._conn = psycopg.connect(self.url, autocommit=not self.dry_run,
                                         connect_timeout=max(1, int(self.lock_timeout)),
                                         application_name="jailhooks")
        except psycopg.Error as exc:
            if 'database "' in str(exc) and "does not exist" in str(exc):
                raise ConfigError(f"no such database: {_first_line(exc)}", f"registry {self.shown}") from None
            if _refused_login(exc):  # trying again will not help: exit 77, not 75
                raise PermissionDenied(f"registry {self.shown} refused the login: {_first_line(exc)}") from None
            raise LockTimeout(f"registry {self.shown} is unreachable: {_first_line(exc)}") from None
        if self.dry_run:
            # Open the outer transaction now: every later transaction() block is then a
            # savepoint inside it (not a commit), and close() rolls the whole run back.
            self._conn.execute("SELECT 1")
        if self.check_schema:
            version = self._version()
            if version != SCHEMA_VERSION:
                raise ConfigError(f"registry {self.shown}: schema version {version}, this jailhooks needs "
                                  f"{SCHEMA_VERSION}: run `jailhooks registry migrate` (never done automatically "
                                  "on a shared database)")

    def _version(self) -> int:
        import psycopg

        try:
            with self._conn.transaction():
                row = self._conn.execute("SELECT value FROM meta WHERE key = 'schema_version'").fetchone()
            return int(row[0]) if row else 0
        except psycopg.errors.UndefinedTable:
            return 0

    @contextmanager
    def _tx(self) -> Iterator[_Db]:
        import psycopg

        db = self.db
        try:
            with self._conn.transaction():
                self._conn.execute(f"SET LOCAL lock_timeout = '{int(self.lock_timeout * 1000)}ms'")
                self._conn.execute("SELECT pg_advisory_xact_lock(%s)", (LOCK_KEY,))
                yield db
        except psycopg.errors.LockNotAvailable:
            raise LockTimeout(f"registry {self.shown}: still locked after {self.lock_timeout:g}s; try again") from None
        except psycopg.errors.ExclusionViolation as exc:
            raise JailhooksError(f"registry {self.shown} refused overlapping UID blocks: {_first_line(exc)}") from None
        except psycopg.OperationalError as exc:
            self._conn = None
            raise LockTimeout(f"registry {self.shown} is unreachable: {_first_line(exc)}") from None

    def _integrity(self) -> list[str]:
        return []  # the server keeps its own pages whole; sql.py checks our invariants

    def migrate(self) -> tuple[int, int]:
        """Bring the schema to SCHEMA_VERSION; (from, to)."""
        self.check_schema = False
        db = self.db
        with self._conn.transaction():
            self._conn.execute("SELECT pg_advisory_xact_lock(%s)", (LOCK_KEY,))
            before = self._version_in_tx()
            for v in range(before + 1, SCHEMA_VERSION + 1):
                for stmt in MIGRATIONS[v]:
                    db.execute(stmt)
                db.execute("DELETE FROM meta WHERE key = 'schema_version'")
                db.execute("INSERT INTO meta VALUES ('schema_version', ?)", (str(v),))
        return before, SCHEMA_VERSION

    def _version_in_tx(self) -> int:
        row = self._conn.execute("SELECT to_regclass('meta')").fetchone()
        if row[0] is None:
            return 0
        row = self._conn.execute("SELECT value FROM meta WHERE key = 'schema_version'").fetchone()
        return int(row[0]) if row else 0

    def close(self) -> None:
        if self._conn is not None:
            if self.dry_run:
                self._conn.rollback()
            self._conn.close()
            self._conn = None


def _refused_login(exc: Exception) -> bool:
    """The server answered and refused who we are (SQLSTATE class 28:
    invalid_authorization_specification, invalid_password), as opposed to a
    server that is down or busy.  libpq reports connection failures as text."""
    if str(getattr(exc, "sqlstate", "") or "").startswith("28"):
        return True
    text = str(exc)
    return any(s in text for s in ("password authentication failed", "authentication failed for user",
                                   "no password supplied", "no pg_hba.conf entry")) or (
        "role \"" in text and "does not exist" in text)


def _first_line(exc: BaseException) -> str:
    return (str(exc).strip().splitlines() or [type(exc).__name__])[0]
