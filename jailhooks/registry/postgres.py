"""PostgreSQL registry: UID blocks unique across a fleet of jail hosts.

Leases live in one database shared by every host.  A jail's UID block is
fleet-wide and follows the jail when it moves (``jailhooks lease move``);
its FIB is per host.  Every change runs in one short transaction that first
takes a transaction-level advisory lock (writers are serialised fleet-wide),
waiting at most ``lock_timeout``; the exclusion constraint over int8range
makes the database itself refuse overlapping blocks, whatever the code does.

Allocation and release are one round trip each from schema version 2 on:
server-side functions (``jailhooks_allocate``, ``jailhooks_release``) do
what sql.py does, under the same advisory lock, which is then held for the
time the server takes, not for a dozen round trips.  A version 1 database
still works, through sql.py, so that every host's jailhooks can be upgraded
before the database is migrated.

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

from ..errors import ConfigError, DataError, JailhooksError, LockTimeout, PermissionDenied, PoolExhausted
from ..types import Lease
from .sql import SqlRegistry

SCHEMA_VERSION = 2
WORKS_WITH = (1, 2)  # version 1: without the server-side functions (sql.py's round trips)
# jailhooks_allocate: sql.py's allocate_uids and _sync_pool in one statement; the lease found or made
# and made true, or no lease and PROBLEM 'overlap' (with the other lease) or 'exhausted:N' (N blocks in use)
ALLOCATE = """
CREATE FUNCTION jailhooks_allocate(p_jail text, p_size bigint, p_pool_first bigint, p_pool_last bigint,
        p_fixed_first bigint, p_fixed_last bigint, p_host text, p_created double precision,
        p_lock_key bigint, p_lock_ms integer)
    RETURNS TABLE (r_jail text, r_uid_first bigint, r_uid_last bigint, r_fib integer, r_fib_exclusive smallint,
                   r_host text, r_created double precision, r_made boolean, r_problem text)
    LANGUAGE plpgsql AS $fn$
DECLARE
    l leases%ROWTYPE;
    rec record;
    pool_text text := p_pool_first || '-' || p_pool_last;
    cur bigint;
    v_first bigint;
    v_last bigint;
    used bigint;
BEGIN
    SELECT * INTO l FROM leases WHERE jail = p_jail;
    IF NOT FOUND THEN
        PERFORM set_config('lock_timeout', p_lock_ms || 'ms', true);
        PERFORM pg_advisory_xact_lock(p_lock_key);
        SELECT * INTO l FROM leases WHERE jail = p_jail;  -- made by another process since the read
    END IF;
    IF FOUND THEN
        RETURN QUERY SELECT l.jail, l.uid_first, l.uid_last, l.fib, l.fib_exclusive, l.host, l.created, false,
            NULL::text;
        RETURN;
    END IF;
    IF NOT EXISTS (SELECT 1 FROM meta WHERE key = 'uid_pool' AND value = pool_text) THEN
        DELETE FROM free_uids;  -- the pool changed: rebuild its free extents
        cur := p_pool_first;
        FOR rec IN SELECT uid_first, uid_last FROM leases WHERE uid_last >= p_pool_first
                AND uid_first <= p_pool_last ORDER BY uid_first LOOP
            IF rec.uid_first > cur THEN
                INSERT INTO free_uids VALUES (cur, rec.uid_first - 1);
            END IF;
            cur := greatest(cur, rec.uid_last + 1);
        END LOOP;
        IF cur <= p_pool_last THEN
            INSERT INTO free_uids VALUES (cur, p_pool_last);
        END IF;
        DELETE FROM meta WHERE key = 'uid_pool';
        INSERT INTO meta VALUES ('uid_pool', pool_text);
    END IF;
    IF p_fixed_first IS NOT NULL THEN
        SELECT * INTO l FROM leases WHERE uid_first <= p_fixed_last ORDER BY uid_first DESC LIMIT 1;
        IF FOUND AND l.uid_last >= p_fixed_first THEN
            RETURN QUERY SELECT l.jail, l.uid_first, l.uid_last, l.fib, l.fib_exclusive, l.host, l.created, false,
                'overlap'::text;
            RETURN;
        END IF;
        FOR rec IN (SELECT first, last FROM free_uids WHERE first <= p_fixed_first ORDER BY first DESC LIMIT 1)
                UNION ALL (SELECT first, last FROM free_uids WHERE first > p_fixed_first AND first <= p_fixed_last)
        LOOP
            CONTINUE WHEN rec.last < p_fixed_first OR rec.first > p_fixed_last;
            DELETE FROM free_uids WHERE first = rec.first;
            IF rec.first < p_fixed_first THEN
                INSERT INTO free_uids VALUES (rec.first, p_fixed_first - 1);
            END IF;
            IF rec.last > p_fixed_last THEN
                INSERT INTO free_uids VALUES (p_fixed_last + 1, rec.last);
            END IF;
        END LOOP;
        v_first := p_fixed_first;
        v_last := p_fixed_last;
    ELSE
        SELECT first, last INTO rec FROM free_uids WHERE last - first + 1 >= p_size ORDER BY first LIMIT 1;
        IF NOT FOUND THEN
            SELECT count(*) INTO used FROM leases WHERE uid_first >= p_pool_first AND uid_last <= p_pool_last;
            RETURN QUERY SELECT NULL::text, NULL::bigint, NULL::bigint, NULL::integer, NULL::smallint, NULL::text,
                NULL::double precision, false, 'exhausted:' || used;
            RETURN;
        END IF;
        v_first := rec.first;
        v_last := rec.first + p_size - 1;
        DELETE FROM free_uids WHERE first = rec.first;
        IF v_last < rec.last THEN
            INSERT INTO free_uids VALUES (v_last + 1, rec.last);
        END IF;
    END IF;
    INSERT INTO leases (jail, uid_first, uid_last, fib, fib_exclusive, host, created)
        VALUES (p_jail, v_first, v_last, NULL, 0, p_host, p_created);
    RETURN QUERY SELECT p_jail, v_first, v_last, NULL::integer, 0::smallint, p_host, p_created, true, NULL::text;
END
$fn$"""
# jailhooks_release: sql.py's release and _give_back in one statement; the lease released, if there was one
RELEASE = """
CREATE FUNCTION jailhooks_release(p_jail text, p_lock_key bigint, p_lock_ms integer)
    RETURNS TABLE (r_jail text, r_uid_first bigint, r_uid_last bigint, r_fib integer, r_fib_exclusive smallint,
                   r_host text, r_created double precision)
    LANGUAGE plpgsql AS $fn$
DECLARE
    l leases%ROWTYPE;
    pool text;
    v_first bigint;
    v_last bigint;
    prev record;
    nxt record;
BEGIN
    PERFORM set_config('lock_timeout', p_lock_ms || 'ms', true);
    PERFORM pg_advisory_xact_lock(p_lock_key);
    DELETE FROM leases WHERE jail = p_jail RETURNING * INTO l;
    IF NOT FOUND THEN
        RETURN;
    END IF;
    SELECT value INTO pool FROM meta WHERE key = 'uid_pool';
    IF FOUND THEN
        v_first := greatest(l.uid_first, split_part(pool, '-', 1)::bigint);
        v_last := least(l.uid_last, split_part(pool, '-', 2)::bigint);
        IF v_first <= v_last THEN
            SELECT first, last INTO prev FROM free_uids WHERE first < v_first ORDER BY first DESC LIMIT 1;
            IF FOUND AND prev.last = v_first - 1 THEN
                DELETE FROM free_uids WHERE first = prev.first;
                v_first := prev.first;
            END IF;
            SELECT first, last INTO nxt FROM free_uids WHERE first = v_last + 1;
            IF FOUND THEN
                DELETE FROM free_uids WHERE first = nxt.first;
                v_last := nxt.last;
            END IF;
            INSERT INTO free_uids VALUES (v_first, v_last);
        END IF;
    END IF;
    RETURN QUERY SELECT l.jail, l.uid_first, l.uid_last, l.fib, l.fib_exclusive, l.host, l.created;
END
$fn$"""
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
    2: [ALLOCATE, RELEASE],
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
        self.version = 0

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
        self.version = self._version()
        if self.check_schema and self.version not in WORKS_WITH:
            raise ConfigError(f"registry {self.shown}: schema version {self.version}, this jailhooks needs "
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
        db = self.db
        with self._errors():
            with self._conn.transaction():
                self._conn.execute(f"SET LOCAL lock_timeout = '{int(self.lock_timeout * 1000)}ms'")
                self._conn.execute("SELECT pg_advisory_xact_lock(%s)", (LOCK_KEY,))
                yield db

    @contextmanager
    def _errors(self) -> Iterator[None]:
        """The server's refusals as jailhooks' errors (exit 75 for what may pass)."""
        import psycopg

        try:
            yield
        except psycopg.errors.LockNotAvailable:
            raise LockTimeout(f"registry {self.shown}: still locked after {self.lock_timeout:g}s; try again") from None
        except psycopg.errors.ExclusionViolation as exc:
            raise JailhooksError(f"registry {self.shown} refused overlapping UID blocks: {_first_line(exc)}") from None
        except psycopg.OperationalError as exc:
            self._conn = None
            raise LockTimeout(f"registry {self.shown} is unreachable: {_first_line(exc)}") from None

    def _integrity(self) -> list[str]:
        return []  # the server keeps its own pages whole; sql.py checks our invariants

    # -- one round trip each (schema version 2) ------------------------------------------------
    def allocate_uids(self, jail: str, size: int, pool: tuple[int, int],
                      fixed: tuple[int, int] | None = None) -> tuple[Lease, bool]:
        db = self.db
        if self.version < 2:
            return super().allocate_uids(jail, size, pool, fixed)
        import time

        with self._errors():
            row = db.execute("SELECT * FROM jailhooks_allocate(?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                             (jail, size, pool[0], pool[1], fixed[0] if fixed else None, fixed[1] if fixed else None,
                              self.host_name, time.time(), LOCK_KEY, int(self.lock_timeout * 1000))).fetchone()
        made, problem = row[7], row[8]
        if problem == "overlap":
            raise DataError(f"jail {jail}: UIDs {fixed[0]}-{fixed[1]} overlap the block of jail {row[0]} "  # type: ignore[index]
                            f"({row[1]}-{row[2]})")
        if problem:
            raise PoolExhausted(f"UID pool {pool[0]}-{pool[1]} has no free block of {size} UIDs "
                                f"({problem.split(':')[1]} blocks in use): widen [uids] first/last or release leases")
        lease = Lease(row[0], int(row[1]), int(row[2]), row[3], bool(row[4]), row[5], float(row[6]))
        return (lease, True) if made else (self._held(lease, fixed), False)

    def release(self, jail: str) -> Lease | None:
        db = self.db
        if self.version < 2:
            return super().release(jail)
        with self._errors():
            row = db.execute("SELECT * FROM jailhooks_release(?, ?, ?)",
                             (jail, LOCK_KEY, int(self.lock_timeout * 1000))).fetchone()
        return Lease(row[0], int(row[1]), int(row[2]), row[3], bool(row[4]), row[5], float(row[6])) if row else None

    def migrate(self, to: int = SCHEMA_VERSION) -> tuple[int, int]:
        """Bring the schema to version TO; (from, to)."""
        self.check_schema = False
        db = self.db
        with self._conn.transaction():
            self._conn.execute("SELECT pg_advisory_xact_lock(%s)", (LOCK_KEY,))
            before = self._version_in_tx()
            for v in range(before + 1, to + 1):
                for stmt in MIGRATIONS[v]:
                    self._conn.execute(stmt)  # as written: no placeholders (plpgsql has %ROWTYPE)
                db.execute("DELETE FROM meta WHERE key = 'schema_version'")
                db.execute("INSERT INTO meta VALUES ('schema_version', ?)", (str(v),))
        self.version = max(before, to)
        return before, max(before, to)

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
