"""The registry's logic, in SQL that SQLite and PostgreSQL both run.

Allocation keeps the free parts of the UID pool as extents in ``free_uids``
(first is the primary key).  "Lowest free block" is then an index walk to the
first extent that fits, not a scan of the leases: the cost does not grow with
the number of leases.  The database refuses duplicates itself even if the
code were wrong: a UNIQUE index on ``uid_first``, a partial unique index on
exclusive FIBs, and on PostgreSQL an exclusion constraint over the UID ranges.

Subclasses provide ``db`` (with ``execute(sql, params)``, ``?`` placeholders),
``_tx()`` (one serialised write transaction, bounded wait, then exit 75) and
``_integrity()``.
"""
from __future__ import annotations

import time
from typing import Any

from ..types import Lease
from ..errors import DataError, PoolExhausted

COLUMNS = "jail, uid_first, uid_last, fib, fib_exclusive, host, created"
_COLUMNS = COLUMNS


def checked_lease(item: Any, what: str) -> Lease:
    """A lease from outside (an export file, a jail's own files), validated
    with the same checks as allocation; DataError naming WHAT and the lease."""
    from .. import validate
    from ..config import host_label

    try:
        if not isinstance(item, dict):
            raise ValueError("not a JSON object")
        first, last = validate.uid_block(item["uid_first"], item["uid_last"])
        fib = item.get("fib")
        created = item.get("created") or 0.0
        if isinstance(created, bool) or not isinstance(created, (int, float)):
            raise ValueError(f"created {created!r} is not a time")
        if not isinstance(item.get("fib_exclusive", False), bool):
            raise ValueError("fib_exclusive is not true or false")
        return Lease(jail=validate.jail_name(item["jail"]), uid_first=first, uid_last=last,
                     fib=None if fib is None else validate.fib_number(fib),
                     fib_exclusive=bool(item.get("fib_exclusive")), host=host_label(item.get("host") or ""),
                     created=float(created))
    except KeyError as exc:
        raise DataError(f"{what}: lease {validate.shown(repr(item), 120)}: missing {exc}") from None
    except ValueError as exc:
        who = validate.shown(str(item.get("jail", "?"))) if isinstance(item, dict) else "?"
        raise DataError(f"{what}: lease of {who}: {exc}") from None


def _lease(row: tuple) -> Lease:
    return Lease(jail=row[0], uid_first=int(row[1]), uid_last=int(row[2]), fib=row[3], fib_exclusive=bool(row[4]),
                 host=row[5], created=float(row[6]))


class SqlRegistry:
    db: Any
    host_name: str = ""
    fleet = False  # leases shared by many hosts: FIBs are per host, a lease belongs to one host

    @property
    def _on_host(self) -> str:
        return " AND host = ?" if self.fleet else ""

    @property
    def _host_arg(self) -> tuple:
        return (self.host_name,) if self.fleet else ()

    def _tx(self) -> Any:  # a context manager yielding db; provided by the backends
        raise NotImplementedError

    def _integrity(self) -> list[str]:
        return []

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
    def _sync_pool(self, db: Any, pool: tuple[int, int]) -> None:
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
        db.execute("DELETE FROM meta WHERE key = 'uid_pool'")
        db.execute("INSERT INTO meta VALUES ('uid_pool', ?)", (text,))

    def _held(self, lease: Lease, fixed: tuple[int, int] | None) -> Lease:
        """LEASE, the jail's existing one, if this host may use it as configured."""
        jail = lease.jail
        if self.fleet and lease.host != self.host_name:
            raise DataError(f"jail {jail}: its lease (UIDs {lease.uid_first}-{lease.uid_last}) is held by host "
                            f"{lease.host}; if the jail moved here, run: jailhooks lease move {jail} "
                            f"--to {self.host_name}")
        if fixed and lease.uid_range != tuple(fixed):
            raise DataError(f"jail {jail} holds UIDs {lease.uid_first}-{lease.uid_last}, but the config asks for "
                            f"{fixed[0]}-{fixed[1]}: release the lease first (jailhooks release {jail})")
        return lease

    def _carve(self, db: Any, first: int, last: int) -> None:
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

    def _give_back(self, db: Any, first: int, last: int, pool: tuple[int, int]) -> None:
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

    def _pool(self, db: Any) -> tuple[int, int] | None:
        row = db.execute("SELECT value FROM meta WHERE key = 'uid_pool'").fetchone()
        if not row:
            return None
        a, b = row[0].split("-")
        return int(a), int(b)

    def allocate_uids(self, jail: str, size: int, pool: tuple[int, int],
                      fixed: tuple[int, int] | None = None) -> tuple[Lease, bool]:
        # Most runs find the jail's lease: a read, without taking the write lock.
        lease = self.get(jail)
        if lease is not None:
            return self._held(lease, fixed), False
        with self._tx() as db:
            row = db.execute(f"SELECT {_COLUMNS} FROM leases WHERE jail = ?", (jail,)).fetchone()
            if row:  # made by another process since the read
                return self._held(_lease(row), fixed), False
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
            lease = Lease(jail, first, last, None, False, self.host_name, time.time())
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
        # Most runs find the FIB recorded as asked: a read, without taking the write lock.
        row = self.db.execute("SELECT fib, fib_exclusive, host FROM leases WHERE jail = ?", (jail,)).fetchone()
        if row is not None and (not self.fleet or row[2] == self.host_name) and row[0] is not None \
                and bool(row[1]) == exclusive and (fixed is None or row[0] == fixed):
            return row[0], False
        with self._tx() as db:
            row = db.execute("SELECT fib, fib_exclusive, host FROM leases WHERE jail = ?", (jail,)).fetchone()
            if row is None:
                raise DataError(f"jail {jail} has no lease to record a FIB in")
            if self.fleet and row[2] != self.host_name:
                raise DataError(f"jail {jail}: its lease is held by host {row[2]}, not {self.host_name}")
            if row[0] is not None and bool(row[1]) == exclusive and (fixed is None or row[0] == fixed):
                return row[0], False
            taken = {r[0] for r in db.execute(f"SELECT fib FROM leases WHERE fib_exclusive = 1 AND jail != ?{self._on_host}",
                                              (jail, *self._host_arg))}
            if fixed is not None:
                if fixed in taken:
                    owner = db.execute(f"SELECT jail FROM leases WHERE fib = ? AND fib_exclusive = 1{self._on_host}",
                                       (fixed, *self._host_arg)).fetchone()
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
                shared = db.execute(f"SELECT jail FROM leases WHERE fib = ? AND fib_exclusive = 0 AND jail != ?"
                                    f"{self._on_host}", (fib, jail, *self._host_arg)).fetchone()
                if shared:
                    raise DataError(f"jail {jail}: FIB {fib} is already shared by jail {shared[0]}")
            db.execute("UPDATE leases SET fib = ?, fib_exclusive = ? WHERE jail = ?", (fib, int(exclusive), jail))
            return fib, True

    def clear_fib(self, jail: str) -> None:
        with self._tx() as db:
            db.execute("UPDATE leases SET fib = NULL, fib_exclusive = 0 WHERE jail = ?", (jail,))

    # -- integrity -----------------------------------------------------------------------
    def check(self) -> list[str]:
        problems = self._integrity()
        for jail, first, prev_jail, prev_last in self.db.execute(
                "SELECT jail, uid_first, pj, pl FROM (SELECT jail, uid_first, LAG(jail) OVER w AS pj, "
                "LAG(uid_last) OVER w AS pl FROM leases WINDOW w AS (ORDER BY uid_first)) AS ordered WHERE uid_first <= pl"):
            problems.append(f"leases of {prev_jail} and {jail} overlap at UID {first}")
        for f, l, jail in self.db.execute(
                "SELECT f.first, f.last, l.jail FROM free_uids f JOIN leases l "
                "ON l.uid_first <= f.last AND l.uid_last >= f.first LIMIT 10"):
            problems.append(f"free extent {f}-{l} overlaps the lease of {jail}")
        return problems

    # -- fleet ------------------------------------------------------------------------
    def move(self, jail: str, to_host: str) -> Lease:
        """The jail moved to TO_HOST: its UID block follows, its FIB (per host) does not."""
        with self._tx() as db:
            row = db.execute(f"SELECT {_COLUMNS} FROM leases WHERE jail = ?", (jail,)).fetchone()
            if not row:
                raise DataError(f"jail {jail} has no lease")
            db.execute("UPDATE leases SET host = ?, fib = NULL, fib_exclusive = 0 WHERE jail = ?", (to_host, jail))
        return _lease(row)._replace(host=to_host, fib=None, fib_exclusive=False)

    def export(self) -> list[dict]:
        return [dict(l._asdict()) for l in self.leases()]

    def import_leases(self, leases: list) -> tuple[int, int]:
        """Add leases (from export); (added, already there).  All or nothing."""
        added = same = 0
        with self._tx() as db:
            for item in leases:
                lease = checked_lease(item, "import")
                row = db.execute(f"SELECT {_COLUMNS} FROM leases WHERE jail = ?", (lease.jail,)).fetchone()
                if row:
                    if _lease(row).uid_range != lease.uid_range:
                        raise DataError(f"import: jail {lease.jail} already holds UIDs {row[1]}-{row[2]} here, "
                                        f"not {lease.uid_first}-{lease.uid_last}")
                    same += 1
                    continue
                other = db.execute(f"SELECT {_COLUMNS} FROM leases WHERE uid_first <= ? ORDER BY uid_first DESC "
                                   "LIMIT 1", (lease.uid_last,)).fetchone()
                if other and other[2] >= lease.uid_first:
                    raise DataError(f"import: UIDs {lease.uid_first}-{lease.uid_last} of jail {lease.jail} overlap "
                                    f"the block of jail {other[0]}")
                if lease.fib is not None:
                    host = lease.host or self.host_name
                    clash = db.execute("SELECT jail FROM leases WHERE fib = ? AND host = ? AND (fib_exclusive = 1 OR ?)",
                                       (lease.fib, host, bool(lease.fib_exclusive))).fetchone()
                    if clash:
                        raise DataError(f"import: FIB {lease.fib} of jail {lease.jail} is "
                                        f"{'exclusive' if lease.fib_exclusive else 'shared'}, and jail {clash[0]} "
                                        f"holds it {'too' if lease.fib_exclusive else 'exclusively'}")
                db.execute(f"INSERT INTO leases ({_COLUMNS}) VALUES (?, ?, ?, ?, ?, ?, ?)",
                           (lease.jail, lease.uid_first, lease.uid_last, lease.fib, int(lease.fib_exclusive),
                            lease.host or self.host_name, lease.created or time.time()))
                added += 1
            db.execute("DELETE FROM meta WHERE key = 'uid_pool'")  # free extents are rebuilt on next allocation
        return added, same
