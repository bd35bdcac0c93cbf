"""SQLite registry: one file, transactional, safe across processes.

Every change runs in one ``BEGIN IMMEDIATE`` transaction (the write lock is
taken up front, waiting at most ``lock_timeout`` seconds, then exit 75), so
two processes can never hand out overlapping blocks, and a process killed at
any moment leaves either the old or the new state (WAL, synchronous=FULL).

Allocation keeps the free parts of the UID pool as extents in ``free_uids``
(first is the primary key).  "Lowest free block" is then an index walk to the
first extent that fits, not a scan of the leases: the cost does not grow with
the number of leases.  A UNIQUE index on ``uid_first`` and a partial unique
index on exclusive FIBs make the database refuse duplicates even if the code
were wrong.
"""
from __future__ import annotations

import os
import sqlite3
import time
from contextlib import contextmanager
from typing import Iterator

from ..context import Lease
from ..errors import DataError, JailhooksError, LockTimeout, PoolExhausted

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


def _lease(row: tuple) -> Lease:
    return Lease(jail=row[0], uid_first=row[1], uid_last=row[2], fib=row[3], fib_exclusive=bool(row[4]),
                 host=row[5], created=row[6])


_COLUMNS = "jail, uid_first, uid_last, fib, fib_exclusive, host, created"


class SqliteRegistry:
    def __init__(self, state_dir: str, lock_timeout: float, dry_run: bool = False):
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
        except sqlite3.DatabaseError as exc:
            raise JailhooksError(f"registry {self.path}: {exc}") from None

    def _pragma_wal(self) -> None:
        mode = self.db.execute("PRAGMA journal_mode").fetchone()[0]
        if mode != "wal":
            self.db.execute("PRAGMA journal_mode = WAL")

    def _error(self, exc: sqlite3.OperationalError) -> JailhooksError:
        if "locked" in str(exc) or "busy" in str(exc):
            return LockTimeout(f"registry {self.path}: still locked after {self.lock_timeout:g}s; try again")
        return JailhooksError(f"registry {self.path}: {exc}")

    @contextmanager
    def _tx(self) -> Iterator[sqlite3.Connection]:
        try:
            self.db.execute("BEGIN IMMEDIATE")
        except sqlite3.OperationalError as exc:
            raise self._error(exc) from None
        try:
            yield self.db
        except BaseException:
            self.db.execute("ROLLBACK")
            raise
        else:
            try:
                self.db.execute("COMMIT")
            except sqlite3.OperationalError as exc:
                self.db.execute("ROLLBACK")
                raise self._error(exc) from None

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

    # -- reads ---------------------------------------------------------------------
    def get(self, jail: str) -> Lease | None:
        row = self.db.execute(f"SELECT {_COLUMNS} FROM leases WHERE jail = ?", (jail,)).fetchone()
        return _lease(row) if row else None

    def leases(self) -> list[Lease]:
        return [_lease(r) for r in self.db.execute(f"SELECT {_COLUMNS} FROM leases ORDER BY uid_first")]

    def owner_of(self, uid: int) -> Lease | None:
        """The lease whose block holds UID (blocks never overlap)."""
        row = self.db.execute(f"SELECT {_COLUMNS} FROM leases WHERE uid_first <= ? ORDER BY uid_first DESC LIMIT 1",
                              (uid,)).fetchone()
        return _lease(row) if row and row[2] >= uid else None

    # -- the UID pool -------------------------------------------------------------------
    def _sync_pool(self, db: sqlite3.Connection, pool: tuple[int, int]) -> None:
        """Rebuild the free extents when the configured pool changed."""
        row = db.execute("SELECT value FROM meta WHERE key = 'uid_pool'").fetchone()
        text = f"{pool[0]}-{pool[1]}"
        if row and row[0] == text:
            return
        db.execute("DELETE FROM free_uids")
        cursor = pool[0]
        for first, last in db.execute("SELECT uid_first, uid_last FROM leases WHERE uid_last >= ? AND uid_first <= ? "
                                      "ORDER BY uid_first", pool).fetchall():
            if first > cursor:
                db.execute("INSERT INTO free_uids VALUES (?, ?)", (cursor, first - 1))
            cursor = max(cursor, last + 1)
        if cursor <= pool[1]:
            db.execute("INSERT INTO free_uids VALUES (?, ?)", (cursor, pool[1]))
        db.execute("INSERT OR REPLACE INTO meta VALUES ('uid_pool', ?)", (text,))

    def _carve(self, db: sqlite3.Connection, first: int, last: int) -> None:
        """Remove [first, last] from the free extents."""
        rows = db.execute("SELECT first, last FROM free_uids WHERE first <= ? ORDER BY first DESC LIMIT 1",
                          (first,)).fetchall()
        rows += db.execute("SELECT first, last FROM free_uids WHERE first > ? AND first <= ?", (first, last)).fetchall()
        for f, l in rows:
            if l < first or f > last:
                continue
            db.execute("DELETE FROM free_uids WHERE first = ?", (f,))
            if f < first:
                db.execute("INSERT INTO free_uids VALUES (?, ?)", (f, first - 1))
            if l > last:
                db.execute("INSERT INTO free_uids VALUES (?, ?)", (last + 1, l))

    def _give_back(self, db: sqlite3.Connection, first: int, last: int, pool: tuple[int, int]) -> None:
        first, last = max(first, pool[0]), min(last, pool[1])
        if first > last:
            return
        prev = db.execute("SELECT first, last FROM free_uids WHERE first < ? ORDER BY first DESC LIMIT 1",
                          (first,)).fetchone()
        nxt = db.execute("SELECT first, last FROM free_uids WHERE first = ?", (last + 1,)).fetchone()
        if prev and prev[1] == first - 1:
            db.execute("DELETE FROM free_uids WHERE first = ?", (prev[0],))
            first = prev[0]
        if nxt:
            db.execute("DELETE FROM free_uids WHERE first = ?", (nxt[0],))
            last = nxt[1]
        db.execute("INSERT INTO free_uids VALUES (?, ?)", (first, last))

    def _pool(self, db: sqlite3.Connection) -> tuple[int, int] | None:
        row = db.execute("SELECT value FROM meta WHERE key = 'uid_pool'").fetchone()
        if not row:
            return None
        a, b = row[0].split("-")
        return int(a), int(b)

    def allocate_uids(self, jail: str, size: int, pool: tuple[int, int],
                      fixed: tuple[int, int] | None = None) -> tuple[Lease, bool]:
        with self._tx() as db:
            row = db.execute(f"SELECT {_COLUMNS} FROM leases WHERE jail = ?", (jail,)).fetchone()
            if row:
                lease = _lease(row)
                if fixed and lease.uid_range != tuple(fixed):
                    raise DataError(f"jail {jail} holds UIDs {lease.uid_first}-{lease.uid_last}, but the config asks for "
                                    f"{fixed[0]}-{fixed[1]}: release the lease first (jailhooks release {jail})")
                return lease, False
            self._sync_pool(db, pool)
            if fixed:
                first, last = fixed
                # blocks are disjoint: only the one starting last at or below LAST can overlap
                row = db.execute(f"SELECT {_COLUMNS} FROM leases WHERE uid_first <= ? ORDER BY uid_first DESC "
                                 "LIMIT 1", (last,)).fetchone()
                other = _lease(row) if row and row[2] >= first else None
                if other is not None:
                    raise DataError(f"jail {jail}: UIDs {first}-{last} overlap the block of jail {other.jail} "
                                    f"({other.uid_first}-{other.uid_last})")
                self._carve(db, first, last)
            else:
                found = db.execute("SELECT first, last FROM free_uids WHERE last - first + 1 >= ? ORDER BY first LIMIT 1",
                                   (size,)).fetchone()
                if not found:
                    used = db.execute("SELECT count(*) FROM leases WHERE uid_first >= ? AND uid_last <= ?", pool).fetchone()[0]
                    raise PoolExhausted(f"UID pool {pool[0]}-{pool[1]} has no free block of {size} UIDs "
                                        f"({used} blocks in use): widen [uids] first/last or release leases")
                first, last = found[0], found[0] + size - 1
                db.execute("DELETE FROM free_uids WHERE first = ?", (found[0],))
                if last < found[1]:
                    db.execute("INSERT INTO free_uids VALUES (?, ?)", (last + 1, found[1]))
            lease = Lease(jail, first, last, None, False, os.uname().nodename, time.time())
            db.execute(f"INSERT INTO leases ({_COLUMNS}) VALUES (?, ?, ?, ?, ?, ?, ?)",
                       (lease.jail, lease.uid_first, lease.uid_last, None, 0, lease.host, lease.created))
            return lease, True

    def release(self, jail: str) -> Lease | None:
        with self._tx() as db:
            row = db.execute(f"SELECT {_COLUMNS} FROM leases WHERE jail = ?", (jail,)).fetchone()
            if not row:
                return None
            lease = _lease(row)
            db.execute("DELETE FROM leases WHERE jail = ?", (jail,))
            pool = self._pool(db)
            if pool:
                self._give_back(db, lease.uid_first, lease.uid_last, pool)
            return lease

    # -- FIBs -------------------------------------------------------------------------
    def allocate_fib(self, jail: str, candidates: range, exclusive: bool,
                     fixed: int | None = None) -> tuple[int, bool]:
        with self._tx() as db:
            row = db.execute("SELECT fib, fib_exclusive FROM leases WHERE jail = ?", (jail,)).fetchone()
            if row is None:
                raise DataError(f"jail {jail} has no lease to record a FIB in")
            if row[0] is not None and bool(row[1]) == exclusive and (fixed is None or row[0] == fixed):
                return row[0], False
            taken = {r[0] for r in db.execute("SELECT fib FROM leases WHERE fib_exclusive = 1 AND jail != ?", (jail,))}
            if fixed is not None:
                if fixed in taken:
                    owner = db.execute("SELECT jail FROM leases WHERE fib = ? AND fib_exclusive = 1", (fixed,)).fetchone()
                    raise DataError(f"jail {jail}: FIB {fixed} is held exclusively by jail {owner[0]}")
                fib = fixed
            else:
                fib = next((f for f in candidates if f not in taken), None)
                if fib is None:
                    raise PoolExhausted(f"no free FIB for jail {jail}: all {len(candidates)} of "
                                        f"{candidates.start}..{candidates.stop - 1} are held; raise net.fibs "
                                        f"(sysctl net.fibs=N at run time, it only grows; net.fibs=\"N\" in "
                                        f"/boot/loader.conf to keep it)")
            if exclusive:
                shared = db.execute("SELECT jail FROM leases WHERE fib = ? AND fib_exclusive = 0 AND jail != ?",
                                    (fib, jail)).fetchone()
                if shared:
                    raise DataError(f"jail {jail}: FIB {fib} is already shared by jail {shared[0]}")
            db.execute("UPDATE leases SET fib = ?, fib_exclusive = ? WHERE jail = ?", (fib, int(exclusive), jail))
            return fib, True

    def clear_fib(self, jail: str) -> None:
        with self._tx() as db:
            db.execute("UPDATE leases SET fib = NULL, fib_exclusive = 0 WHERE jail = ?", (jail,))

    # -- integrity -----------------------------------------------------------------------
    def check(self) -> list[str]:
        problems = [r[0] for r in self.db.execute("PRAGMA integrity_check") if r[0] != "ok"]
        for jail, first, prev_jail, prev_last in self.db.execute(
                "SELECT jail, uid_first, pj, pl FROM (SELECT jail, uid_first, LAG(jail) OVER w AS pj, "
                "LAG(uid_last) OVER w AS pl FROM leases WINDOW w AS (ORDER BY uid_first)) WHERE uid_first <= pl"):
            problems.append(f"leases of {prev_jail} and {jail} overlap at UID {first}")
        for f, l, jail in self.db.execute(
                "SELECT f.first, f.last, l.jail FROM free_uids f JOIN leases l "
                "ON l.uid_first <= f.last AND l.uid_last >= f.first LIMIT 10"):
            problems.append(f"free extent {f}-{l} overlaps the lease of {jail}")
        return problems

    def close(self) -> None:
        self.db.close()
