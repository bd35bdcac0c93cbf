"""The lease registry: disjoint blocks, lowest free first, safe under
parallel processes and kill -9."""
from __future__ import annotations

import multiprocessing
import os
import random
import signal
import sqlite3
import subprocess
import sys
import time

import pytest
from hypothesis import given, settings, strategies as st

from jailhooks.errors import DataError, LockTimeout, PoolExhausted
from jailhooks.registry.sqlite import SqliteRegistry

POOL = (100_000, 199_999)


def blocks(reg):
    return sorted(l.uid_range for l in reg.leases())


def lowest_gap(reg, size, pool=POOL):
    """An independent oracle: the lowest start of SIZE free UIDs in the pool."""
    cursor = pool[0]
    for a, b in blocks(reg):
        if a - cursor >= size:
            break
        cursor = max(cursor, b + 1)
    return cursor if cursor + size - 1 <= pool[1] else None


def assert_consistent(reg, pool=POOL):
    assert reg.check() == []
    if not reg.leases() and not reg.db.execute("SELECT 1 FROM meta").fetchone():
        return
    leased = blocks(reg)
    free = sorted(reg.db.execute("SELECT first, last FROM free_uids").fetchall())
    # leases and free extents tile the pool exactly (inside the pool)
    pieces = sorted([(max(a, pool[0]), min(b, pool[1])) for a, b in leased if b >= pool[0] and a <= pool[1]] + free)
    cursor = pool[0]
    for a, b in pieces:
        assert a == cursor, (pieces, a, cursor)
        cursor = b + 1
    assert cursor == pool[1] + 1


@settings(max_examples=60, deadline=None)
@given(st.lists(st.tuples(st.sampled_from(["alloc", "release"]), st.integers(0, 30), st.integers(1, 3000)),
                max_size=60))
def test_allocation_is_disjoint_lowest_free_and_in_the_pool(tmp_path_factory, ops):
    reg = SqliteRegistry(str(tmp_path_factory.mktemp("reg")), 5)
    for op, j, size in ops:
        name = f"j{j}"
        if op == "alloc":
            expected_first = lowest_gap(reg, size) if reg.get(name) is None else None
            try:
                lease, created = reg.allocate_uids(name, size, POOL)
            except PoolExhausted:
                assert expected_first is None
                continue
            if created:
                assert lease.uid_first == expected_first  # the lowest block that fits
                assert lease.uid_last - lease.uid_first + 1 == size
        else:
            reg.release(name)
        bs = blocks(reg)
        assert all(POOL[0] <= a <= b <= POOL[1] for a, b in bs)
        assert all(b1[1] < b2[0] for b1, b2 in zip(bs, bs[1:]))
    assert_consistent(reg)


def test_fixed_blocks_and_pool_changes(tmp_path):
    reg = SqliteRegistry(str(tmp_path), 5)
    reg.allocate_uids("a", 1000, POOL)
    reg.allocate_uids("fixed", 100, POOL, fixed=(150_000, 150_099))
    with pytest.raises(DataError, match="overlap the block of jail fixed"):
        reg.allocate_uids("b", 100, POOL, fixed=(150_050, 150_149))
    with pytest.raises(DataError, match="release the lease first"):
        reg.allocate_uids("fixed", 100, POOL, fixed=(160_000, 160_099))
    assert_consistent(reg)
    bigger = (100_000, 299_999)  # the admin widens the pool: free extents are rebuilt
    lease, _ = reg.allocate_uids("c", 100_000, bigger)
    assert lease.uid_range == (150_100, 250_099)
    small, _ = reg.allocate_uids("d", 1000, bigger)
    assert small.uid_range == (101_000, 101_999)
    assert_consistent(reg, bigger)


def test_registry_refuses_a_newer_schema(tmp_path):
    SqliteRegistry(str(tmp_path), 5).close()
    with sqlite3.connect(tmp_path / "registry.sqlite") as db:
        db.execute("PRAGMA user_version = 99")
    with pytest.raises(Exception, match="newer than this jailhooks"):
        SqliteRegistry(str(tmp_path), 5)


def test_lock_wait_is_bounded(tmp_path):
    reg = SqliteRegistry(str(tmp_path), 0.2)
    holder = sqlite3.connect(tmp_path / "registry.sqlite", isolation_level=None)
    holder.execute("BEGIN IMMEDIATE")
    start = time.monotonic()
    with pytest.raises(LockTimeout, match="still locked after 0.2s"):
        reg.allocate_uids("a", 10, POOL)
    assert time.monotonic() - start < 5
    holder.execute("ROLLBACK")


def _worker(path: str, worker: int, rounds: int, queue) -> None:
    try:
        reg = SqliteRegistry(path, 30)
        for r in range(rounds):
            name = f"j{(worker * 7 + r) % 40}"  # workers collide on names on purpose
            reg.allocate_uids(name, 1000, POOL)
            if r % 3 == 2:
                reg.release(name)
        queue.put(None)
    except Exception as exc:  # reported to the parent: no unhandled error allowed
        queue.put(repr(exc))


@pytest.mark.torture
def test_32_processes_allocate_and_release_at_once(tmp_path):
    ctx = multiprocessing.get_context("spawn")
    queue = ctx.Queue()
    procs = [ctx.Process(target=_worker, args=(str(tmp_path), w, 12, queue)) for w in range(32)]
    for p in procs:
        p.start()
    errors = [queue.get(timeout=120) for _ in procs]
    for p in procs:
        p.join()
    assert errors == [None] * 32
    reg = SqliteRegistry(str(tmp_path), 5)
    names = [l.jail for l in reg.leases()]
    assert len(names) == len(set(names))  # one lease per jail
    bs = blocks(reg)
    assert all(b1[1] < b2[0] for b1, b2 in zip(bs, bs[1:]))
    assert_consistent(reg)


ALLOCATE_FOREVER = """
import sys
from jailhooks.registry.sqlite import SqliteRegistry
reg = SqliteRegistry(sys.argv[1], 30)
i = 0
while True:
    reg.allocate_uids(f"j{i % 50}", 1000, (100000, 199999))
    if i == 0:
        print("allocating", flush=True)
    if i % 2:
        reg.release(f"j{(i * 7) % 50}")
    i += 1
"""


@pytest.mark.torture
def test_kill_9_during_allocation_leaves_a_consistent_registry(tmp_path):
    rng = random.Random(7)
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)}
    for _ in range(20):
        procs = [subprocess.Popen([sys.executable, "-c", ALLOCATE_FOREVER, str(tmp_path)], env=env,
                                  stdout=subprocess.PIPE, text=True) for _ in range(3)]
        for p in procs:  # kill in the allocation loop, however long start-up takes here
            assert p.stdout.readline() == "allocating\n"
        time.sleep(rng.uniform(0.0, 0.2))
        for p in procs:
            os.kill(p.pid, signal.SIGKILL)
            p.wait()
            p.stdout.close()
        reg = SqliteRegistry(str(tmp_path), 5)
        assert_consistent(reg)
        reg.close()
    reg = SqliteRegistry(str(tmp_path), 5)
    assert reg.leases()  # the workers did get somewhere
    # re-running converges: every jail ends with exactly one lease
    for i in range(50):
        reg.allocate_uids(f"j{i}", 1000, POOL)
    assert len(reg.leases()) == 50
    assert_consistent(reg)
