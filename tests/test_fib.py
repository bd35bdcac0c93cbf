"""FIBs: pool allocation, shared mode, routes through route(8)."""
from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor

import pytest

from .conftest import status_records

ROUTES = """
[fib]
mode = "exclusive"
connected = [{ net = "192.0.2.0/24", interface = "em0" }]
gateway = "192.0.2.1"
routes = [{ net = "10.0.0.0/8", gateway = "192.0.2.254" }]
"""


def set_fibs(env, n):
    assert env.sim.run(["/sbin/sysctl", f"net.fibs={n}"], None, 5, True).returncode == 0


def route_log(env):
    return [" ".join(c) for c in env.host_state()["log"] if c[0] == "route"]


def test_exclusive_fibs_come_from_the_pool_and_run_out(env, cli):
    env.write_config('[fib]\nmode = "exclusive"\n')
    set_fibs(env, 3)
    for name, fib in (("a", 1), ("b", 2)):
        res = cli("run", "create", name, "--ip4", "192.0.2.10")
        assert res.code == 0, res.err
        assert f"{name}: create: fib: FIB {fib} (exclusive, new)" in res.out
        assert f"exec.fib = {fib};" in res.out
    res = cli("run", "create", "c", "--ip4", "192.0.2.12")
    assert res.code == 69
    assert "no free FIB for jail c: all 2 of 1..2 are held; raise net.fibs (sysctl net.fibs=N" in res.err
    assert "undone: uids: release UIDs" in res.err  # c got no lease either
    set_fibs(env, 4)  # net.fibs read at each run: growing it helps at once
    assert cli("run", "create", "c", "--ip4", "192.0.2.12").code == 0
    fibs = {r["jail"]: r["fib"] for r in status_records(cli("status", "--json").out)}
    assert fibs == {"a": 1, "b": 2, "c": 3}
    assert cli("run", "destroy", "b").code == 0
    assert cli("run", "create", "d", "--ip4", "192.0.2.13").code == 0
    assert {r["jail"]: r["fib"] for r in status_records(cli("status", "--json").out)}["d"] == 2


def test_shared_fib(env, cli):
    env.write_config('[fib]\nmode = "shared"\nfib = 1\n')
    res = cli("run", "create", "a", "--ip4", "192.0.2.10")
    assert res.code == 69 and "FIB 1 does not exist (net.fibs=1)" in res.err
    set_fibs(env, 2)
    assert cli("run", "create", "a", "--ip4", "192.0.2.10").code == 0
    assert cli("run", "create", "b", "--ip4", "192.0.2.11").code == 0
    assert [r["fib"] for r in status_records(cli("status", "--json").out)] == [1, 1]


def test_routes_connected_first_idempotent_and_removed_at_destroy(env, cli):
    env.write_config(ROUTES)
    set_fibs(env, 2)
    assert cli("run", "prestart", "a", "--ip4", "192.0.2.10").code == 0
    assert route_log(env) == [
        "route -q -n flush -fib 1",  # a new owner: whatever was left in the FIB goes first
        "route -q -n -4 add -net 192.0.2.0/24 -iface em0 -fib 1",
        "route -q -n -4 add default 192.0.2.1 -fib 1",
        "route -q -n -4 add -net 10.0.0.0/8 192.0.2.254 -fib 1",
    ]
    table = env.host_state()["routes"]["1"]
    assert table == {"192.0.2.0/24": {"gateway": "em0", "iface": True},
                     "default4": {"gateway": "192.0.2.1", "iface": False},
                     "10.0.0.0/8": {"gateway": "192.0.2.254", "iface": False}}
    assert cli("run", "prestart", "a", "--ip4", "192.0.2.10").code == 0  # again: same table
    assert env.host_state()["routes"]["1"] == table
    assert cli("check", "a").code == 0
    assert cli("run", "destroy", "a", "--ip4", "192.0.2.10").code == 0
    assert env.host_state()["routes"]["1"] == {}


def test_route_failure_fails_the_start_closed(env, cli):
    env.write_config(ROUTES.replace('connected = [{ net = "192.0.2.0/24", interface = "em0" }]\n', ""))
    set_fibs(env, 2)
    res = cli("run", "prestart", "a", "--ip4", "192.0.2.10")
    assert res.code == 1
    assert "add net default: gateway 192.0.2.1 fib 1: Network is unreachable" in res.err
    assert env.anchor("jailhooks/a") is None
    assert status_records(cli("status", "--json").out) == []


@pytest.mark.torture
def test_parallel_creates_get_distinct_fibs(env):
    env.write_config('[fib]\nmode = "exclusive"\n')
    set_fibs(env, 13)
    with ThreadPoolExecutor(12) as pool:
        results = list(pool.map(lambda i: env.subprocess("run", "create", f"j{i}", "--ip4", f"192.0.2.{i + 10}"),
                                range(12)))
    assert [r.code for r in results] == [0] * 12, [r.err for r in results]
    fibs = [r["fib"] for r in status_records(env.subprocess("status", "--json").out)]
    assert sorted(fibs) == list(range(1, 13))
