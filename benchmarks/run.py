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
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from jailhooks.host.simulated import SimulatedRunner  # noqa: E402
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


def write_config(root: Path, jails: int = 0) -> Path:
    cfg = root / "jailhooks.toml"
    body = f'[host]\nmode = "simulated"\nstate_dir = "{root / "state"}"\n\n'
    body += '[pf]\nallow = [{ proto = ["tcp", "udp"], to = "192.0.2.53", port = 53 }]\n'
    cfg.write_text(body)
    return cfg


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


def bench_hook_path(n: int) -> list[tuple[str, float, str]]:
    """`jailhooks run prestart web` as jail(8) runs it: 10,000 leases in the
    registry, an installed site plugin found through its entry point, the
    jail's path and address in the config (so etc/pw.conf is checked)."""
    root = Path(tempfile.mkdtemp(prefix="jh-bench-"))
    try:
        cfg = write_config(root)
        jail = root / "jails" / "web"
        (jail / "etc").mkdir(parents=True)
        with cfg.open("a") as fh:
            fh.write(f'\n[jail.web]\npath = "{jail}"\nip4 = "192.0.2.10"\n')
        bulk_leases(root / "state", 10_000)
        site = site_plugin(root)
        python, script, env = clean_python(root, site)
        hook = [script, "--config", str(cfg), "run", "prestart", "web"]
        for _ in range(2):  # warm: pyc files, the lease, etc/pw.conf, the entry-point cache
            subprocess.run(hook, env=env, check=True, capture_output=True)
        t = interleaved({"bare": [python, "-c", "pass"], "floor": [python, "-c", FLOOR_IMPORTS], "hook": hook}, env, n)
        # The same with this machine's python3 as it is (its site .pth files included).
        as_is_env = env_for(str(site))
        as_is_hook = [sys.executable, "-m", "jailhooks", "--config", str(cfg), "run", "prestart", "web"]
        subprocess.run(as_is_hook, env=as_is_env, check=True, capture_output=True)
        u = interleaved({"floor": [sys.executable, "-c", FLOOR_IMPORTS], "hook": as_is_hook}, as_is_env, n)
        return [
            ("hook path / import floor", t["hook"] / t["floor"],
             f"goal <= 1.3; run prestart {t['hook'] * 1000:.0f} ms, floor ({FLOOR_IMPORTS}) {t['floor'] * 1000:.0f} ms"),
            ("hook path / bare interpreter", t["hook"] / t["bare"], f"bare {t['bare'] * 1000:.0f} ms"),
            ("  same, this python3 with its site .pth files", u["hook"] / u["floor"],
             f"python -m jailhooks {u['hook'] * 1000:.0f} ms, floor {u['floor'] * 1000:.0f} ms"),
        ]
    finally:
        shutil.rmtree(root)


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


def bench_alloc(ops: int) -> list[tuple[str, float, str]]:
    small = statistics.median(alloc_cost(1_000, ops) for _ in range(3))
    large = statistics.median(alloc_cost(100_000, ops) for _ in range(3))
    return [("allocation at 100,000 leases / at 1,000", large / small,
             f"goal <= 1.5; per allocate+release {small * 1000:.2f} ms at 1,000, {large * 1000:.2f} ms at 100,000")]


def bench_parallel(jails: int = 32) -> list[tuple[str, float, str]]:
    def run(root: Path, parallel: bool) -> float:
        cfg = write_config(root)
        env = env_for()
        cmds = [[sys.executable, "-m", "jailhooks", "--config", str(cfg), "run", "create", f"j{i}",
                 "--ip4", f"192.0.2.{i + 10}"] for i in range(jails)]
        t = time.perf_counter()
        if parallel:
            with ThreadPoolExecutor(jails) as pool:
                codes = list(pool.map(lambda c: subprocess.run(c, env=env, capture_output=True).returncode, cmds))
        else:
            codes = [subprocess.run(c, env=env, capture_output=True).returncode for c in cmds]
        assert codes == [0] * jails, codes
        reg = SqliteRegistry(str(root / "state"), 30)
        blocks = sorted(l.uid_range for l in reg.leases())
        assert len(blocks) == jails and all(a[1] < b[0] for a, b in zip(blocks, blocks[1:]))
        return time.perf_counter() - t

    with tempfile.TemporaryDirectory() as a, tempfile.TemporaryDirectory() as b:
        serial = run(Path(a), parallel=False)
        parallel = run(Path(b), parallel=True)
    return [(f"{jails} parallel creates: throughput / serial", serial / parallel,
             f"{os.cpu_count()} cores; serial {serial:.2f} s, parallel {parallel:.2f} s, blocks disjoint")]


def per_jail(n: int, command: str) -> float:
    """Seconds per jail of one `jailhooks sync` or `run start J1..JN` over N running jails."""
    root = Path(tempfile.mkdtemp(prefix="jh-batch-"))
    try:
        cfg = write_config(root)
        sim = SimulatedRunner(str(root / "state"))
        with sim.state() as st:  # N running jails, as jail(8) would have made them
            for i in range(n):
                (root / "jails" / str(i) / "etc").mkdir(parents=True)
                st["jails"][f"j{i}"] = {"jid": i + 1, "name": f"j{i}", "path": str(root / "jails" / str(i)), "hostname": "",
                                        "ip4": [f"10.{i // 250}.{i % 250}.1"], "ip6": [], "ip4.saddrsel": True,
                                        "ip6.saddrsel": True, "persist": True, "cpusetid": i + 3}
            st["next_jid"] = n + 1
        bulk_leases(root / "state", n)
        with sqlite3.connect(root / "state" / "registry.sqlite") as db:
            db.execute("UPDATE leases SET jail = 'j' || substr(jail, 6)")
        args = ["sync"] if command == "sync" else ["run", "start", *(f"j{i}" for i in range(n))]
        cmd = [sys.executable, "-m", "jailhooks", "--config", str(cfg), "-q", *args]
        t = time.perf_counter()
        subprocess.run(cmd, env=env_for(), check=True, capture_output=True)
        return (time.perf_counter() - t) / n
    finally:
        shutil.rmtree(root)


def bench_batch(sizes: list[int]) -> list[tuple[str, float, str]]:
    """Per-jail cost of one process handling N jails.  The plain per-jail time
    shrinks as the start-up is shared by more jails; the marginal cost (what
    each further jail adds, start-up taken out) is the one that must not grow."""
    rows = []
    for command in ("sync", "run start"):
        per = {n: per_jail(n, command) for n in sizes}
        big, mid, small = sizes[-1], sizes[-2], sizes[1]
        detail = ", ".join(f"N={n}: {per[n] * 1000:.1f} ms" for n in sizes)
        rows.append((f"{command} per jail at N={big} / at N={small}", per[big] / per[small],
                     f"one process; per jail {detail}"))
        marginal = {n: (per[n] * n - per[1]) / (n - 1) for n in (mid, big)}
        rows.append((f"  marginal per jail, N={big} / N={mid}", marginal[big] / marginal[mid],
                     f"each further jail: {marginal[mid] * 1000:.2f} ms at N={mid}, {marginal[big] * 1000:.2f} ms "
                     f"at N={big}"))
    return rows


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--quick", action="store_true", help="fewer repetitions and smaller N")
    args = ap.parse_args()
    reps = 7 if args.quick else 20
    print(f"jailhooks benchmarks, Python {sys.version.split()[0]}, {os.cpu_count()} cores "
          f"({'quick' if args.quick else 'full'})")
    rows: list[tuple[str, float, str]] = []
    for bench in (lambda: bench_hook_path(reps), lambda: bench_alloc(50 if args.quick else 200),
                  lambda: bench_parallel(16 if args.quick else 32),
                  lambda: bench_batch([1, 10, 100] if args.quick else [1, 10, 100, 1000])):
        for row in bench():
            rows.append(row)
            print(f"  {row[0]:<44} {row[1]:6.2f}   {row[2]}", flush=True)
    if os.environ.get("BENCH_JSON"):
        Path(os.environ["BENCH_JSON"]).write_text(json.dumps(rows, indent=2))


if __name__ == "__main__":
    main()
