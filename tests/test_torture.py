"""Torture: kill -9 at random moments, every host command failing in turn,
and hostile command lines.  Marked "torture"; CI runs them (a few minutes)."""
from __future__ import annotations

import os
import random
import shutil
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings, strategies as st

from jailhooks.sim import SimulatedRunner
from jailhooks.testing import SimHost
from jailhooks.registry.sqlite import SqliteRegistry

from .conftest import REPO, status_records

pytestmark = pytest.mark.torture

JAILS = {"web": "192.0.2.10", "mail": "192.0.2.20", "db": "192.0.2.30"}


class Host(SimHost):
    """jailhooks.testing's simulated host, three jails configured; their roots
    are shared between copies."""

    LOCK_TIMEOUT = 20  # a run that follows a killed one may wait for the jail's lock

    def __init__(self, root: Path, jails_root: Path):
        super().__init__(root)
        self.jails_root = jails_root
        body = '[fib]\nmode = "exclusive"\n\n[pf]\nallow = [{ proto = "tcp", port = 443 }]\n\n'
        for name, ip in JAILS.items():
            (jails_root / name / "etc").mkdir(parents=True, exist_ok=True)
            body += f'[jail.{name}]\npath = "{jails_root / name}"\nip4 = "{ip}"\n\n'
        self.write_config(body)
        self.sim.run(["/sbin/sysctl", "net.fibs=8"], None, 5, True)

    def argv(self, *args: str) -> list[str]:
        return [sys.executable, "-m", "jailhooks", "--config", str(self.config), *args]

    def snapshot(self) -> dict:
        sim = SimulatedRunner(str(self.state)).read()
        res = self.subprocess("status", "--json")
        assert res.code == 0, res.err
        status = status_records(res.out.replace(str(self.jails_root), "JAILS"))
        return {"anchors": sim["pf"]["anchors"], "status": status}

    def copy_to(self, root: Path) -> "Host":
        """A copy with its own state and its own jail roots (each jail's
        etc/pw.conf records the lease of the registry that wrote it)."""
        jails_root = root / "jails"
        shutil.copytree(self.jails_root, jails_root, symlinks=True)
        other = Host(root, jails_root)
        shutil.rmtree(other.state, ignore_errors=True)
        shutil.copytree(self.state, other.state, ignore=shutil.ignore_patterns("locks"))
        with SimulatedRunner(str(other.state)).state() as st:  # its running jails live in its own roots
            for name in list(st["jails"]):
                j = st["jails"][name]
                j["path"] = j["path"].replace(str(self.jails_root), str(jails_root))
                st["jails"][name] = j
        return other


def check_registry(state: Path) -> None:
    reg = SqliteRegistry(str(state), 10)
    assert reg.check() == []
    for lease in reg.leases():  # every lease whole
        assert lease.uid_last - lease.uid_first + 1 == 1000 and lease.host
    reg.close()


def test_kill_9_at_random_moments_then_rerun_converges(tmp_path):
    """Kill a run at a random fraction of how long the same run takes on this
    machine (measured on an uninterrupted copy just before), so the kills land
    mid-run on a slow or a fast machine alike; keep going until 50 did."""
    rng = random.Random(1234)
    jails_root = tmp_path / "jails"
    host = Host(tmp_path / "host", jails_root)
    sim = SimulatedRunner(str(host.state))
    phases = ["create", "start", "stop", "destroy", "prestart", "poststop"]
    kills = i = 0
    while kills < 50 and i < 300:
        i += 1
        jail, phase = rng.choice(list(JAILS)), rng.choice(phases)
        running = jail in sim.read()["jails"]
        if phase in ("start", "prestart") and not running:
            sim.run(["/usr/sbin/jail", "-c", f"name={jail}", f"path={jails_root / jail}", f"ip4.addr={JAILS[jail]}",
                     "persist"], None, 5, True)
        elif phase in ("stop", "poststop", "destroy") and running:
            sim.run(["/usr/sbin/jail", "-r", jail], None, 5, True)
        reference = host.copy_to(tmp_path / f"ref{i}")
        began = time.monotonic()
        ref = reference.subprocess("run", phase, jail)
        took = time.monotonic() - began
        assert ref.code == 0, ref.err
        proc = subprocess.Popen(host.argv("-q", "run", phase, jail), stdout=subprocess.DEVNULL,
                                stderr=subprocess.DEVNULL, env={**os.environ, "PYTHONPATH": str(REPO)})
        time.sleep(took * rng.uniform(0.05, 0.95))
        if proc.poll() is None:
            os.kill(proc.pid, signal.SIGKILL)
            kills += 1
        proc.wait()
        check_registry(host.state)
        again = host.subprocess("run", phase, jail)
        assert again.code == 0, (phase, jail, again.err)
        assert host.snapshot() == reference.snapshot(), (i, phase, jail)
        shutil.rmtree(reference.root)
    assert kills >= 50, f"only {kills} of {i} runs were still running when killed"


def _phase_commands(tmp_path, phase: str) -> list[list[str]]:
    """The distinct commands (tool + leading arguments) a phase runs."""
    host = Host(tmp_path / f"probe-{phase}", tmp_path / f"probe-{phase}" / "jails")
    sim = SimulatedRunner(str(host.state))
    if phase in ("poststart", "prestop", "poststop", "destroy"):
        assert host.subprocess("run", "create", "web").code == 0
        assert host.subprocess("run", "prestart", "web").code == 0
    if phase in ("poststart", "prestop"):
        sim.run(["/usr/sbin/jail", "-c", "name=web", f"path={tmp_path}", "ip4.addr=192.0.2.10", "persist"], None, 5, True)
    sim.clear_log()
    assert host.subprocess("run", phase, "web").code == 0
    seen = []
    for cmd in sim.read()["log"]:
        key = cmd[: 4 if cmd[0] == "pfctl" else 3]
        if key not in seen:
            seen.append(key)
    return seen


@pytest.mark.parametrize("phase", ["create", "prestart", "poststart", "poststop", "destroy"])
@pytest.mark.parametrize("fault", ["fails", "times out", "prints garbage"])
def test_each_host_command_failing_in_turn(tmp_path, phase, fault):
    commands = _phase_commands(tmp_path, phase)
    assert commands, phase
    for n, prefix in enumerate(commands):
        host = Host(tmp_path / f"{phase}-{n}", tmp_path / f"{phase}-{n}" / "jails")
        sim = SimulatedRunner(str(host.state))
        if phase in ("poststart", "poststop", "destroy"):
            assert host.subprocess("run", "create", "web").code == 0
            assert host.subprocess("run", "prestart", "web").code == 0
        if phase == "poststart":
            sim.run(["/usr/sbin/jail", "-c", "name=web", f"path={tmp_path}", "ip4.addr=192.0.2.10", "persist"],
                    None, 5, True)
        before = host.snapshot()
        if fault == "fails":
            sim.add_fault(prefix, rc=1, stderr=f"{prefix[0]}: injected failure\n")
        elif fault == "times out":
            sim.add_fault(prefix, timeout=True)
        else:
            sim.add_fault(prefix, rc=0, stdout="\x00garbage{[\n")
        res = host.subprocess("run", phase, "web")
        sim.clear_faults()
        assert "Traceback" not in res.err
        check_registry(host.state)
        if fault == "prints garbage" and res.code == 0:
            continue  # commands whose output jailhooks does not read
        assert res.code != 0, (phase, prefix, fault)
        after = host.snapshot()
        if phase in ("create", "prestart", "poststart"):
            # fail closed: nothing this run did survives; a poststart failure also takes the anchor away
            if phase == "poststart" and prefix[0] == "jls":
                # the jail's facts could not be read: no plugin ran, nothing changed (sync removes
                # the anchor of a jail that jail(8) then removed)
                assert after == before
            elif phase == "poststart":
                assert after["anchors"] == {} and before["status"][0]["uid_range"] == after["status"][0]["uid_range"]
            else:
                assert after == before, (phase, prefix, fault)
        else:
            # best effort: the anchor is gone unless flushing it was the failing step
            flushed = not (prefix[:4] == ["pfctl", "-q", "-a", "jailhooks/web"])
            assert (after["anchors"] == {}) == flushed, (phase, prefix, fault)


TOKENS = st.sampled_from(["run", "start", "stop", "prestart", "poststop", "create", "destroy", "status", "render",
                          "sync", "check", "release", "plugins", "--json", "--dry-run", "-q", "-v", "--path",
                          "--ip4", "--ip6", "--force", "--", "web", "-", "--config", "/etc/passwd", "a;b",
                          "../..", "192.0.2.1", "em0|10.0.0.1/24", "x" * 300, "\n", "$(reboot)", "'", "sim"])


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(st.lists(TOKENS | st.text(max_size=12), max_size=7))
def test_hostile_command_lines_never_crash(tmp_path_factory, argv):
    env = SimHost(tmp_path_factory.mktemp("hostile"))
    res = env.run(*[a for a in argv if a != "--config"])
    assert res.code in (0, 1, 2, 64, 65, 68, 69, 75, 78), (argv, res)
    assert "Traceback" not in res.err and "internal error" not in res.err, (argv, res.err)
    reg = env.state / "registry.sqlite"
    if reg.exists():
        with sqlite3.connect(reg) as db:
            for (jail,) in db.execute("SELECT jail FROM leases"):
                assert jail.replace("-", "").replace("_", "").isalnum()


def test_parallel_replayed_starts_as_at_boot(tmp_path):
    """Every jail compiled, then all started at once, five times over, as
    separate processes (rc.d/jail with jail_parallel_start): each start is
    replayed, each anchor is loaded, nothing of another jail's is touched."""
    from jailhooks import plan

    host = Host(tmp_path / "host", tmp_path / "jails")
    sim = SimulatedRunner(str(host.state))
    for name in JAILS:  # the first starts take the leases and FIBs (the registry changes)
        assert host.subprocess("run", "prestart", name).code == 0
        assert host.subprocess("run", "poststop", name).code == 0
    time.sleep(plan.RACY_SECONDS + 0.1)  # the inputs settle; nothing here depends on how long a run takes
    for name in JAILS:
        assert host.subprocess("run", "prestart", name).code == 0
        assert host.subprocess("run", "poststop", name).code == 0
        assert (host.state / "plans" / name).is_file(), name
    plans = {name: plan.fingerprint(str(host.state / "plans" / name)) for name in JAILS}
    for _ in range(5):
        procs = {name: subprocess.Popen(host.argv("-q", "run", "prestart", name), stdout=subprocess.DEVNULL,
                                        stderr=subprocess.PIPE, text=True, env={**os.environ, "PYTHONPATH": str(REPO)})
                 for name in JAILS}
        for name, proc in procs.items():
            assert proc.wait(timeout=120) == 0, (name, proc.stderr.read())
        # a full path writes its plan anew: the same files mean every start was replayed
        assert {name: plan.fingerprint(str(host.state / "plans" / name)) for name in JAILS} == plans
        anchors = sim.read()["pf"]["anchors"]
        assert sorted(a for a in anchors if a.startswith("jailhooks/")) == sorted(f"jailhooks/{n}" for n in JAILS)
        for name, ip in JAILS.items():
            sim.run(["/usr/sbin/jail", "-c", f"name={name}", f"path={host.jails_root / name}", f"ip4.addr={ip}",
                     "persist"], None, 5, True)
        check = host.subprocess("check")
        assert check.code == 0, check.out + check.err
        for name in JAILS:
            sim.run(["/usr/sbin/jail", "-r", name], None, 5, True)
            assert host.subprocess("run", "poststop", name).code == 0
