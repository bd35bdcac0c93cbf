"""jailhooks benchmarks: each line is a ratio of two things measured side by
side in the same run, on this machine, so the numbers mean something on a
noisy machine too.  Run:  python benchmarks/run.py [--quick]

Not a test: nothing here asserts; goals are printed next to the results.
"""
from __future__ import annotations

import argparse
import json
import os
import shutil
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

sys.path.insert(0, str(Path(__file__).resolve().parent))
from freebsd_path import (Site, commands_per_phase, compiled, median_of, peak_rss_kib, pg_latency,  # noqa: E402
                          pg_server, sh_hook, start, start_full)
from jailhooks.registry.sqlite import SqliteRegistry  # noqa: E402

FLOOR_IMPORTS = "import pluggy, tomllib, sqlite3" if sys.version_info >= (3, 11) else "import pluggy, tomli, sqlite3"


def env_for(extra_path: str = "") -> dict:
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONDONTWRITEBYTECODE", "JAILHOOKS_CONFIG")}
    env["PYTHONPATH"] = os.pathsep.join(p for p in (extra_path, str(REPO)) if p)
    return env


def interleaved(cmds: dict[str, list[str]], env: dict, n: int) -> dict[str, float]:
    """Median wall time of each command, run round-robin so drift hits all alike."""
    times: dict[str, list[float]] = {k: [] for k in cmds}
    for _ in range(n):
        for key, cmd in cmds.items():
            t = time.perf_counter()
            subprocess.run(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env=env, check=False)
            times[key].append(time.perf_counter() - t)
    return {k: statistics.median(v) for k, v in times.items()}


def bulk_leases(state: Path, n: int, first: int = 100_000, block: int = 1000) -> None:
    """N leases straight into the registry (one transaction), then let the
    registry rebuild its free extents as it would after a pool change."""
    reg = SqliteRegistry(str(state), 30)
    reg.close()
    with sqlite3.connect(state / "registry.sqlite") as db:
        db.executemany("INSERT INTO leases (jail, uid_first, uid_last, fib, fib_exclusive, host, created) "
                       "VALUES (?, ?, ?, NULL, 0, 'bench', 0)",
                       ((f"bench{i}", first + i * block, first + i * block + block - 1) for i in range(n)))
        db.execute("DELETE FROM meta")


def site_plugin(root: Path) -> Path:
    site = root / "site"
    dist = site / "benchplugin-1.0.dist-info"
    dist.mkdir(parents=True)
    (dist / "METADATA").write_text("Metadata-Version: 2.1\nName: benchplugin\nVersion: 1.0\n")
    (dist / "entry_points.txt").write_text("[jailhooks]\nbench = benchplugin\n")
    (site / "benchplugin.py").write_text(
        "from jailhooks import hookimpl\nfrom jailhooks.pf.rules import Filter\n\n"
        "@hookimpl\ndef jailhooks_pf_rules(ctx):\n    return [Filter(proto=['tcp'], to=['192.0.2.80'], port=[8080])]\n")
    return site


# pip's console-script template: what /usr/local/bin/jailhooks is once installed.
CONSOLE_SCRIPT = """#!{python}
# -*- coding: utf-8 -*-
import re
import sys
from jailhooks.main import console
if __name__ == '__main__':
    sys.argv[0] = re.sub(r'(-script\\.pyw|\\.exe)?$', '', sys.argv[0])
    sys.exit(console())
"""


def clean_python(root: Path, site: Path) -> tuple[str, str, dict]:
    """(python, jailhooks script, env) of an interpreter like a FreeBSD port's.

    A venv without pip, so that no .pth file of this machine's site-packages
    runs at start-up (here one imports certifi, pathlib and zipfile in every
    process, 25 ms that would flatter every ratio).  pluggy (tomli before
    3.11) and jailhooks come in through PYTHONPATH, which runs no .pth file.
    """
    import pluggy

    venv = root / "venv"
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(venv)], check=True)
    python = str(venv / "bin" / "python")
    script = venv / "bin" / "jailhooks"
    script.write_text(CONSOLE_SCRIPT.format(python=python))
    script.chmod(0o755)
    deps = [pluggy] if sys.version_info >= (3, 11) else [pluggy, __import__("tomli")]
    dirs = [str(site)] + [str(REPO)] + sorted({str(Path(m.__file__).parent.parent) for m in deps})
    env = env_for()
    env["PYTHONPATH"] = os.pathsep.join(dirs)
    return python, str(script), env


def bench_freebsd_path(n: int) -> tuple[list[tuple[str, float, str]], list[tuple[str, int, str]]]:
    """The hook as jail(8) runs it on FreeBSD: the installed script, the real
    host layer execing (stub) commands, the real registry with 10,000 leases
    and a site plugin found through its entry point."""
    root = Path(tempfile.mkdtemp(prefix="jh-bench-"))
    try:
        site = Site(root, 1)
        plugin = site_plugin(root)
        sys.path.insert(0, str(plugin))  # the simulator records what the hook will ask, the plugin's rule included
        try:
            site.record()
        finally:
            sys.path.remove(str(plugin))
        bulk_leases(site.state, 10_000, first=500_000_000)
        python, script, env = clean_python(root, plugin)
        table = commands_per_phase(site, env, python)
        for _ in range(2):  # warm: pyc files, the lease, etc/pw.conf, the entry-point cache
            start(site, env, python, script)
        compiled(site, env, python, script, ["web"])
        hook = site.argv(python, script, "run", "prestart", "web")
        site.stub.stage("down")
        t = interleaved({"bare": [python, "-c", "pass"], "floor": [python, "-c", FLOOR_IMPORTS], "hook": hook}, env, n)
        sh = sh_hook(site)
        runs: dict[str, list[float]] = {"replayed": [], "full": [], "sh": []}
        for _ in range(n):
            runs["full"].append(start_full(site, env, python, script))
            runs["replayed"].append(start(site, env, python, script))  # the full run just compiled it again
            site.stub.stage("down")
            began = time.perf_counter()
            subprocess.run([str(sh)], check=True)
            runs["sh"].append(time.perf_counter() - began)
        ours, full, theirs = (statistics.median(runs[k]) for k in ("replayed", "full", "sh"))
        site.stub.stage("down")
        rss_hook = statistics.median(peak_rss_kib(hook, env) for _ in range(3))
        rss_floor = statistics.median(peak_rss_kib([python, "-c", FLOOR_IMPORTS], env) for _ in range(3))
        rows = [
            ("start vs sh hook", ours / theirs,
             f"goal <= 3; prestart replayed {ours * 1000:.1f} ms, the same state changes from sh {theirs * 1000:.1f} ms"),
            ("  start on the full path vs sh hook", full / theirs,
             f"prestart without a plan (a changed input) {full * 1000:.0f} ms"),
            ("hook path / import floor (FreeBSD path)", t["hook"] / t["floor"],
             f"goal <= 1.3; run prestart (replayed) {t['hook'] * 1000:.0f} ms, floor ({FLOOR_IMPORTS}) "
             f"{t['floor'] * 1000:.0f} ms"),
            ("hook path / bare interpreter", t["hook"] / t["bare"], f"bare {t['bare'] * 1000:.0f} ms"),
            ("  bare interpreter vs sh hook", t["bare"] / theirs,
             "what no Python hook can go below: `python -c pass` against the whole sh hook"),
            ("peak RSS: hook run / import floor", rss_hook / rss_floor,
             f"{rss_hook / 1024:.1f} MiB against {rss_floor / 1024:.1f} MiB"),
        ]
        return rows, table
    finally:
        shutil.rmtree(root)


@contextmanager
def leased_site(n: int):
    """(site, env, python, script): N jails on the stub FreeBSD, answers
    recorded, leases made, and the installed script of a clean interpreter."""
    root = Path(tempfile.mkdtemp(prefix="jh-site-"))
    try:
        site = Site(root, n)
        site.record()
        (root / "site").mkdir()
        python, script, env = clean_python(root, root / "site")
        site.leases(env, python, script)
        yield site, env, python, script
    finally:
        shutil.rmtree(root)


def bench_mass_restart(n: int) -> list[tuple[str, float, str]]:
    """N jails started one after another through their jail.conf hook (one
    process each), as at boot: every jail compiled by an earlier start."""
    with leased_site(n) as (site, env, python, script):
        for name in site.names:
            start(site, env, python, script, name)
        compiled(site, env, python, script, site.names)
        began = time.perf_counter()
        per = [start(site, env, python, script, name) for name in site.names]
        total = time.perf_counter() - began
        first, last = statistics.mean(per[:10]), statistics.mean(per[-10:])
        return [(f"{n} sequential starts: per jail, last 10 / first 10", last / first,
                 f"total {total:.1f} s, {total / n * 1000:.0f} ms per jail (one hook process each, replayed)")]


def sync_cost(n: int) -> tuple[float, int]:
    """(seconds, peak RSS KiB) of one `jailhooks sync` over N running jails."""
    with leased_site(n) as (site, env, python, script):
        site.stub.stage("sync")
        rss = peak_rss_kib(site.argv(python, script, "sync"), env)
        return median_of(3, lambda: site.run(env, python, script, "sync", "sync")), rss


def bench_sync(sizes: list[int]) -> list[tuple[str, float, str]]:
    """sync over N running jails in one process: what each further jail costs
    (start-up taken out) must not grow with N, in time or in memory."""
    cost = {n: sync_cost(n) for n in sizes}
    small, mid, big = sizes[0], sizes[-2], sizes[-1]
    per_small = (cost[mid][0] - cost[small][0]) / (mid - small)
    per_big = (cost[big][0] - cost[mid][0]) / (big - mid)
    rss_per = (cost[big][1] - cost[small][1]) / (big - small)
    detail = ", ".join(f"N={n}: {cost[n][0]:.2f} s" for n in sizes)
    return [(f"sync: each further jail, N={mid}..{big} / N={small}..{mid}", per_big / per_small,
             f"{per_small * 1000:.2f} ms against {per_big * 1000:.2f} ms per jail; {detail}"),
            (f"sync peak RSS at N={big} / at N={small}", cost[big][1] / cost[small][1],
             f"{cost[small][1] / 1024:.1f} MiB at {small} jails, {cost[big][1] / 1024:.1f} MiB at {big}: "
             f"{rss_per:.1f} KiB per further jail")]


def bench_pg(per_process: int) -> tuple[list[tuple[str, float, str]], dict | str]:
    """The fleet registry under load: 16 processes as 4 hosts allocating at
    once, against one process alone and against schema 1's round trips, on
    one server; connections are made before timing and reported apart."""
    with pg_server() as server:
        if isinstance(server, str):
            return [("PostgreSQL registry under load", float("nan"), f"skipped: {server}")], server
        one = pg_latency(server, 1, 1, per_process * 4)
        many = pg_latency(server, 16, 4, per_process)
        old = pg_latency(server, 16, 4, per_process, schema=1)  # sql.py's round trips, before the functions
    (median, p99), (alone, _), (before, _) = many["allocate"], one["allocate"], old["allocate"]
    return [("PostgreSQL allocation, 16 processes on 4 hosts / 1 process", median / alone,
             f"median {median * 1000:.1f} ms, p99 {p99 * 1000:.1f} ms against {alone * 1000:.1f} ms alone; "
             f"release median {many['release'][0] * 1000:.1f} ms; connection set-up (psycopg's import and "
             f"connect) {many['connect'] * 1000:.0f} ms, not counted"),
            ("  the same, one round trip / schema 1's round trips", median / before,
             f"median {before * 1000:.1f} ms with schema 1")], many


def alloc_cost(n_leases: int, ops: int) -> float:
    root = Path(tempfile.mkdtemp(prefix="jh-alloc-"))
    try:
        bulk_leases(root, n_leases)
        reg = SqliteRegistry(str(root), 30)
        pool = (100_000, 1_999_999_999)
        reg.allocate_uids("warm", 1000, pool)  # rebuilds the free list once (a pool change)
        reg.release("warm")
        t = time.perf_counter()
        for i in range(ops):
            reg.allocate_uids(f"new{i}", 1000, pool)
            reg.release(f"new{i}")
        return (time.perf_counter() - t) / ops
    finally:
        shutil.rmtree(root)


def bench_alloc(ops: int, reps: int) -> list[tuple[str, float, str]]:
    small = statistics.median(alloc_cost(1_000, ops) for _ in range(reps))
    large = statistics.median(alloc_cost(100_000, ops) for _ in range(reps))
    return [("allocation at 100,000 leases / at 1,000", large / small,
             f"goal <= 1.5; per allocate+release {small * 1000:.2f} ms at 1,000, {large * 1000:.2f} ms at 100,000")]


def bench_parallel(jails: int = 32) -> list[tuple[str, float, str]]:
    """JAILS creates at once against one registry, on the FreeBSD path."""
    def run(root: Path, parallel: bool) -> float:
        site = Site(root, jails)
        site.record()
        env = env_for()
        site.stub.stage("down")
        cmds = [site.argv(sys.executable, None, "run", "create", name) for name in site.names]
        t = time.perf_counter()
        if parallel:
            with ThreadPoolExecutor(jails) as pool:
                codes = list(pool.map(lambda c: subprocess.run(c, env=env, capture_output=True).returncode, cmds))
        else:
            codes = [subprocess.run(c, env=env, capture_output=True).returncode for c in cmds]
        took = time.perf_counter() - t
        assert codes == [0] * jails, codes
        reg = SqliteRegistry(str(site.state), 30)
        blocks = sorted(lease.uid_range for lease in reg.leases())
        assert len(blocks) == jails and all(a[1] < b[0] for a, b in zip(blocks, blocks[1:]))
        return took

    with tempfile.TemporaryDirectory() as a, tempfile.TemporaryDirectory() as b:
        serial = run(Path(a), parallel=False)
        parallel = run(Path(b), parallel=True)
    return [(f"{jails} parallel creates: throughput / serial", serial / parallel,
             f"{os.cpu_count()} cores; serial {serial:.2f} s, parallel {parallel:.2f} s, blocks disjoint")]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--quick", action="store_true", help="fewer repetitions and smaller N (under a minute)")
    args = ap.parse_args()
    quick = args.quick
    reps = 5 if quick else 20
    print(f"jailhooks benchmarks, Python {sys.version.split()[0]}, {os.cpu_count()} cores "
          f"({'quick' if quick else 'full'}); FreeBSD's commands are stubs that fork and exec like them")
    rows: list[tuple[str, float, str]] = []

    def show(found):
        for row in found:
            rows.append(row)
            print(f"  {row[0]:<58} {row[1]:6.2f}   {row[2]}", flush=True)

    found, table = bench_freebsd_path(reps)
    show(found)
    print("  commands per phase (a jail with one address, a lease, an exclusive FIB with two routes, NAT, "
          "five rules):")
    print(f"    {'phase':<30} {'commands':>8}   tools")
    for phase, count, tools in table:
        print(f"    {phase:<30} {count:>8}   {tools}")
    show(bench_mass_restart(20 if quick else 300))
    show(bench_sync([5, 15, 30] if quick else [10, 100, 1000]))
    show(bench_alloc(50 if quick else 200, 1 if quick else 3))
    show(bench_parallel(6 if quick else 32))
    pg_rows, pg = bench_pg(5 if quick else 50)
    show(pg_rows)
    ratio = {name: value for name, value, _ in rows}
    counts = {phase: count for phase, count, _ in table}
    print("goals (issue 23), from this run:")
    print(f"  start vs sh hook: {ratio['start vs sh hook']:.1f} (goal <= 3)")
    print(f"  hook process / import floor: {ratio['hook path / import floor (FreeBSD path)']:.2f} (goal <= 1.3)")
    print(f"  commands per start: {counts['start (prestart, replayed)']} replayed, {counts['prestart']} on the full "
          "path (goal <= 5)")
    if isinstance(pg, str):
        print(f"  PostgreSQL allocation: skipped, {pg}")
    else:
        print(f"  PostgreSQL allocation, 16 processes on 4 hosts: median {pg['allocate'][0] * 1000:.1f} ms "
              f"(goal <= 15), p99 {pg['allocate'][1] * 1000:.1f} ms (goal <= 100)")
    if os.environ.get("BENCH_JSON"):
        Path(os.environ["BENCH_JSON"]).write_text(json.dumps({"rows": rows, "commands": table}, indent=2))


if __name__ == "__main__":
    main()
