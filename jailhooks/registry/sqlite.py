"""SQLite registry (the default): one file, transactional, safe across processes.

Every change runs in one ``BEGIN IMMEDIATE`` transaction (the write lock is
taken up front, waiting at most ``lock_timeout`` seconds, then exit 75), so
two processes can never hand out overlapping blocks, and a process killed at
any moment leaves either the old or the new state (WAL, synchronous=FULL).
The allocation logic is shared with PostgreSQL (sql.py).
"""
from __future__ import annotations

import os
import sqlite3
from contextlib import contextmanager
from typing import Iterator

from ..errors import DataError, JailhooksError, LockTimeout
from .sql import SqlRegistry

SCHEMA_VERSION = 1
MIGRATIONS = {
    # version -> statements that bring version-1 to version
    1: [
        """CREATE TABLE leases (
            jail TEXT PRIMARY KEY,
            uid_first INTEGER NOT NULL,
            uid_last INTEGER NOT NULL CHECK (uid_last >= uid_first),
            fib INTEGER,
            fib_exclusive INTEGER NOT NULL DEFAULT 0,
            host TEXT NOT NULL,
            created REAL NOT NULL)""",
        "CREATE UNIQUE INDEX leases_uid_first ON leases(uid_first)",
        "CREATE UNIQUE INDEX leases_fib_exclusive ON leases(fib) WHERE fib_exclusive = 1",
        "CREATE TABLE free_uids (first INTEGER PRIMARY KEY, last INTEGER NOT NULL CHECK (last >= first))",
        "CREATE TABLE meta (key TEXT PRIMARY KEY, value TEXT NOT NULL)",
    ],
}
DB_NAME = "registry.sqlite"
STAMP = "registry.stamp"  # replaced by every change of a lease: what compiled starts depend on (plan.py)


class SqliteRegistry(SqlRegistry):
    def __init__(self, state_dir: str, lock_timeout: float, dry_run: bool = False, host_name: str = ""):
        self.host_name = host_name or os.uname().nodename
        self.path = os.path.join(state_dir, DB_NAME)
        self.lock_timeout = lock_timeout
        self.dry_run = dry_run
        try:
            if dry_run:
                # A dry run works on a copy in memory: consistent within the run, never saved.
                self.db = sqlite3.connect(":memory:", isolation_level=None)
                if os.path.exists(self.path):
                    source = sqlite3.connect(f"file:{self.path}?mode=ro", uri=True, timeout=lock_timeout)
                    source.backup(self.db)
                    source.close()
            else:
                os.makedirs(state_dir, mode=0o700, exist_ok=True)
                self.db = sqlite3.connect(self.path, timeout=lock_timeout, isolation_level=None)
                self.db.execute("PRAGMA busy_timeout = %d" % int(lock_timeout * 1000))
                self._pragma_wal()
                self.db.execute("PRAGMA synchronous = FULL")
            self._migrate()
        except sqlite3.OperationalError as exc:
            raise self._error(exc) from None
        except sqlite3.DatabaseError as exc:  # not a database, truncated, garbage
            raise DataError(f"registry {self.path}: {exc}; restore it from a backup (it is never recreated "
                            "behind your back)") from None

    def _pragma_wal(self) -> None:
        mode = self.db.execute("PRAGMA journal_mode").fetchone()[0]
        if mode != "wal":
            self.db.execute("PRAGMA journal_mode = WAL")

    def _error(self, exc: sqlite3.OperationalError) -> JailhooksError:
        if "locked" in str(exc) or "busy" in str(exc):
            return LockTimeout(f"registry {self.path}: still locked after {self.lock_timeout:g}s; try again")
        return JailhooksError(f"registry {self.path}: {exc} (it must be a file root can read and write)")

    @contextmanager
    def _tx(self) -> Iterator[sqlite3.Connection]:
        try:
            self.db.execute("BEGIN IMMEDIATE")
        except sqlite3.OperationalError as exc:
            raise self._error(exc) from None
        changes = self.db.total_changes
        try:
            yield self.db
        except BaseException:
            self.db.execute("ROLLBACK")
            raise
        else:
            try:
                if self.db.total_changes != changes and not self.dry_run:
                    self._stamp()
                self.db.execute("COMMIT")
            except sqlite3.OperationalError as exc:
                self.db.execute("ROLLBACK")
                raise self._error(exc) from None

    def _stamp(self) -> None:
        """A lease or FIB changes: replace the stamp that every compiled start
        depends on (plan.py), before the change commits, so that no start can
        replay rules made for the lease as it was."""
        from ..jailfs import replace_file

        try:
            replace_file(os.path.join(os.path.dirname(self.path), STAMP), b"", 0o600)
        except OSError as exc:
            raise DataError(f"registry {self.path}: cannot replace {STAMP}: {exc.strerror}") from None

    def _integrity(self) -> list[str]:
        return [r[0] for r in self.db.execute("PRAGMA integrity_check") if r[0] != "ok"]

    def _migrate(self) -> None:
        version = self.db.execute("PRAGMA user_version").fetchone()[0]
        if version == SCHEMA_VERSION:
            return
        if version > SCHEMA_VERSION:
            raise JailhooksError(f"registry {self.path}: schema version {version} is newer than this jailhooks "
                                 f"({SCHEMA_VERSION}); upgrade jailhooks")
        with self._tx() as db:
            version = db.execute("PRAGMA user_version").fetchone()[0]  # re-read under the lock
            for v in range(version + 1, SCHEMA_VERSION + 1):
                for stmt in MIGRATIONS[v]:
                    db.execute(stmt)
            db.execute(f"PRAGMA user_version = {SCHEMA_VERSION}")

    def close(self) -> None:
        self.db.close()
