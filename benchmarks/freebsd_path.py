"""Benchmarks of the code that runs on FreeBSD: the real host layer, forking
and execing (stub) commands, with the real registry.  See stubhost.py."""
from __future__ import annotations

import os
import statistics
import subprocess
import sys
import time
from contextlib import contextmanager
from pathlib import Path

from stubhost import StubHost, recording

REPO = Path(__file__).resolve().parent.parent

# a typical jail: one address, a lease, an exclusive FIB with two routes, NAT, five rules
POLICY = """
[fib]
mode = "exclusive"
connected = [{ net = "192.0.2.0/24", interface = "em0" }]
gateway = "192.0.2.1"

[saddr]
nat_interface = "em0"

[pf]
allow = [
  { proto = ["tcp", "udp"], to = "192.0.2.53", port = 53 },
  { proto = "tcp", port = [80, 443] },
  { proto = "tcp", to = "192.0.2.30", port = 5432 },
  { proto = "tcp", to = "192.0.2.20", port = 25 },
  { proto = "udp", to = "192.0.2.123", port = 123 },
]
"""
PHASES = ("create", "prestart", "poststart", "prestop", "poststop", "destroy")


def address(i: int) -> str:
    return f"10.{i // 250}.{i % 250 + 1}.5"


class Site:
    """N jails on a stub FreeBSD, with answers recorded from the simulator for
    every stage the benchmarks go through."""

    def __init__(self, root: Path, n: int) -> None:
        from jailhooks.testing import SimHost

        self.root, self.n = root, n
        self.names = ["web"] + [f"j{i}" for i in range(1, n)]
        self.stub = StubHost(root / "stub")
        jails = ""
        for i, name in enumerate(self.names):
            jails += (f'\n[jail.{name}]\npath = "{root / "jails" / name}"\nip4 = "{address(i)}"\n'
                      f'[jail.{name}.saddr]\nnat = "203.0.113.5"\n')
        # the simulated host (jailhooks.testing), only to record answers: its
        # jails are the real runs' jail roots, whose files it leaves to them
        self.simhost = SimHost(root / "simulated")
        self.simhost.write_config("[uids]\nwrite_pw_conf = false\n" + POLICY + jails)
        self.state = root / "state"
        self.config = root / "jailhooks.toml"
        self.config.write_text(f'[host]\nmode = "freebsd"\nstate_dir = "{self.state}"\n'
                               + self.stub.commands_toml() + POLICY + jails)
        for name in self.names:
            (root / "jails" / name / "etc").mkdir(parents=True, exist_ok=True)

    # -- the simulator, to record answers --------------------------------------------------
    def sim(self, *args: str) -> None:
        res = self.simhost.run("-q", *args)
        assert res.code == 0, (args, res)

    def sim_command(self, *argv: str) -> None:
        res = self.simhost.sim.run(list(argv), None, 5, True)
        assert res.returncode == 0, res.stderr

    def record(self) -> None:
        """Stages: down (no jail runs), up:NAME (NAME was just made), sync
        (all run), adopt (web runs without a lease yet)."""
        self.sim_command("/sbin/sysctl", f"net.fibs={self.n + 2}")
        with recording(self.stub, "down"):
            for name in self.names:
                self.sim("run", "create", name)
                self.sim("run", "prestart", name)
        for i, name in enumerate(self.names):
            self.simhost.create_jail(name, ip4=address(i), path=self.root / "jails" / name)
            with recording(self.stub, f"up_{name}"):
                self.sim("run", "poststart", name)
        with recording(self.stub, "sync"):
            self.sim("sync")
        for name in self.names:
            self.simhost.remove_jail(name)
            with recording(self.stub, "down"):
                self.sim("run", "poststop", name)
        with recording(self.stub, "down"):
            self.sim("run", "destroy", "web")
        self.simhost.create_jail("web", ip4=address(0), path=self.root / "jails" / "web")
        with recording(self.stub, "adopt"):
            self.sim("run", "start", "web")
        # the real host starts with net.fibs as the simulator had it
        self.stub.record("none", "sysctl", ["-n", "net.fibs"], f"{self.n + 2}\n", "", 0)
        for stage in ["down", "sync", "adopt"] + [f"up_{n}" for n in self.names]:
            self.stub.record(stage, "sysctl", ["-n", "net.fibs"], f"{self.n + 2}\n", "", 0)

    # -- the real host layer ------------------------------------------------------------------
    def argv(self, python: str, script: str | None, *args: str) -> list[str]:
        head = [script] if script else [python, "-m", "jailhooks"]
        return [*head, "--config", str(self.config), "-q", *args]

    def run(self, env: dict, python: str, script: str | None, stage: str, *args: str) -> float:
        self.stub.stage(stage)
        t = time.perf_counter()
        proc = subprocess.run(self.argv(python, script, *args), env=env, capture_output=True, text=True)
        took = time.perf_counter() - t
        assert proc.returncode == 0, (args, proc.stderr)
        return took

    def leases(self, env: dict, python: str, script: str | None) -> None:
        for name in self.names:
            self.run(env, python, script, "down", "run", "create", name)


def commands_per_phase(site: Site, env: dict, python: str) -> list[tuple[str, int, str]]:
    """(phase, number of commands, which) for the typical jail web; prestart
    as compiled (replayed) and as the full path."""
    rows = []
    compiled(site, env, python, None, ["web"])
    site.stub.clear_log()
    site.run(env, python, None, "down", "run", "prestart", "web")
    seen = site.stub.commands()
    rows.append(("start (prestart, replayed)", len(seen), ", ".join(sorted({c.split()[0] for c in seen}))))
    for phase in PHASES:
        stage = "up_web" if phase in ("poststart", "prestop") else "down"
        if phase == "prestart":
            from jailhooks.plan import forget

            forget(str(site.state), "web")  # the full path
        site.stub.clear_log()
        site.run(env, python, None, stage, "run", phase, "web")
        seen = site.stub.commands()
        rows.append((phase, len(seen), ", ".join(sorted({c.split()[0] for c in seen})) or "-"))
    site.run(env, python, None, "down", "run", "destroy", "web")
    site.stub.clear_log()
    site.run(env, python, None, "adopt", "run", "start", "web")
    seen = site.stub.commands()
    rows.append(("start (adopted running jail)", len(seen), ", ".join(sorted({c.split()[0] for c in seen}))))
    return rows


SH_HOOK = """#!/bin/sh
# what admins wrote by hand: the same state changes, no registry, no checks
# (ip4.nosaddrsel and exec.fib are jail parameters in jail.conf, for both)
{route} -q -n -4 add -net 192.0.2.0/24 -iface em0 -fib 1
{route} -q -n -4 add default 192.0.2.1 -fib 1
{pfctl} -a jailhooks/web -f {anchor}
"""


def sh_hook(site: Site) -> Path:
    anchor = site.root / "web.anchor"
    anchor.write_text("pass out quick all\n")
    hook = site.root / "hook.sh"
    hook.write_text(SH_HOOK.format(route=site.stub.bin / "route", pfctl=site.stub.bin / "pfctl",
                                   jail=site.stub.bin / "jail", anchor=anchor))
    hook.chmod(0o755)
    return hook


def median_of(n: int, fn) -> float:
    return statistics.median(fn() for _ in range(n))


def start(site: Site, env: dict, python: str, script: str | None, name: str = "web") -> float:
    """exec.prestart: the one process jail(8) runs per start when ip4.nosaddrsel
    and exec.fib are the jail's parameters (hooks/jail.conf)."""
    return site.run(env, python, script, "down", "run", "prestart", name)


def start_full(site: Site, env: dict, python: str, script: str | None, name: str = "web") -> float:
    """The same start without its plan: the full path (plugins, registry, proof)."""
    from jailhooks.plan import forget

    forget(str(site.state), name)
    return start(site, env, python, script, name)


def compiled(site: Site, env: dict, python: str, script: str | None, names: list[str]) -> None:
    """Start each jail (its first start takes its lease and FIB), then once
    more after its inputs have settled (plan.py's racy window), so that its
    plan is written; check that it was."""
    from jailhooks.plan import RACY_SECONDS

    for name in names:
        start(site, env, python, script, name)
    time.sleep(RACY_SECONDS + 0.1)
    for name in names:
        if not (site.state / "plans" / name).is_file():
            site.stub.stage("down")
            proc = subprocess.run(site.argv(python, script, "-v", "run", "prestart", name), env=env,
                                  capture_output=True, text=True)
            assert (site.state / "plans" / name).is_file(), f"{name}: no plan compiled: {proc.stderr}"


def peak_rss_kib(argv: list[str], env: dict) -> int:
    """Peak resident set of ARGV (and what it runs), in KiB (Linux ru_maxrss)."""
    probe = ("import resource, subprocess, sys; subprocess.run(sys.argv[1:], stdout=subprocess.DEVNULL, "
             "stderr=subprocess.DEVNULL); print(resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss)")
    out = subprocess.run([sys.executable, "-c", probe, *argv], env=env, capture_output=True, text=True, check=True)
    return int(out.stdout)


@contextmanager
def pg_server():
    """A throwaway PostgreSQL server (tests/pgserver.py), or why there is none here."""
    try:
        import psycopg  # noqa: F401  (the registry's driver: without it there is nothing to measure)
    except ImportError:
        yield "psycopg is not installed (pip install 'jailhooks[postgres]')"
        return
    sys.path.insert(0, str(REPO))
    try:
        from tests.pgserver import PgServer

        server = PgServer()
    except Exception as exc:
        yield f"no PostgreSQL server could be started here ({str(exc).splitlines()[0] if str(exc) else repr(exc)})"
        return
    try:
        yield server
    finally:
        server.destroy()


def pg_latency(server, processes: int, hosts: int, per_process: int, schema: int | None = None) -> dict:
    """One allocation (a new jail's lease) and one release, timed apart, in
    PROCESSES processes as HOSTS hosts at once against a fleet registry in a
    fresh database of SERVER; each process connects first, and that is timed
    apart too.  {"allocate": (median, p99), "release": ..., "connect":
    median} in seconds.  SCHEMA: the registry's schema version (default the
    newest)."""
    from jailhooks.registry.postgres import PostgresRegistry

    url = server.new_database()
    reg = PostgresRegistry(url, 30, check_schema=False)
    reg.migrate() if schema is None else reg.migrate(to=schema)
    reg.close()
    code = ("import sys, time, json\nfrom jailhooks.registry.postgres import PostgresRegistry\n"
            "url, host, tag, n = sys.argv[1], sys.argv[2], sys.argv[3], int(sys.argv[4])\n"
            "t = time.perf_counter()\nreg = PostgresRegistry(url, 60, host_name=host)\nreg.db\n"
            "out = {'connect': time.perf_counter() - t, 'allocate': [], 'release': []}\n"
            "sys.stdout.write('ready\\n')\nsys.stdout.flush()\nsys.stdin.readline()\n"
            "for i in range(n):\n    t = time.perf_counter()\n"
            "    reg.allocate_uids(f'{tag}-{i}', 1000, (100000, 999999999))\n"
            "    out['allocate'].append(time.perf_counter() - t)\n    t = time.perf_counter()\n"
            "    reg.release(f'{tag}-{i}')\n    out['release'].append(time.perf_counter() - t)\n"
            "print(json.dumps(out))\n")
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    procs = [subprocess.Popen([sys.executable, "-c", code, url, f"h{i % hosts}", f"p{i}", str(per_process)],
                              env=env, stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
             for i in range(processes)]
    for p in procs:  # every process connected before any is timed
        assert p.stdout.readline() == "ready\n"
    for p in procs:
        p.stdin.write("go\n")
        p.stdin.flush()
    import json

    runs = [json.loads(p.communicate()[0]) for p in procs]

    def spread(key: str) -> tuple[float, float]:
        times = sorted(t for r in runs for t in r[key])
        return statistics.median(times), times[min(len(times) - 1, int(len(times) * 0.99))]

    return {"allocate": spread("allocate"), "release": spread("release"),
            "connect": statistics.median(r["connect"] for r in runs)}
