"""Shared fixtures: a throwaway host (state dir + config) driven through the CLI."""
from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from jailhooks.host.simulated import SimulatedRunner
from jailhooks.main import main

FIXTURES = Path(__file__).parent / "fixtures" / "freebsd-15.1"
REPO = Path(__file__).resolve().parent.parent


@dataclass
class Result:
    code: int
    out: str
    err: str

    def json(self):
        return json.loads(self.out)

    def jails(self) -> list[dict]:
        """``status --json``, one flat record per jail, for assertions."""
        return status_records(self.out)


def status_records(text: str) -> list[dict]:
    """The jails of a ``status --json`` document (version 1), each flattened:
    the core keys under their short names plus every plugin's keys."""
    doc = json.loads(text)
    assert doc["__version"] == "1" and list(doc) == ["__version", "jailhooks-status"], doc
    return [{"jail": r["name"], "running": r["running"], "jid": r["jid"], "path": r["path"], "ip4": r["ip4.addr"],
             "ip6": r["ip6.addr"], **{k: v for extra in r["plugins"].values() for k, v in extra.items()}}
            for r in doc["jailhooks-status"]["jail"]]


@dataclass
class Env:
    """A config file and a simulated host in a temporary directory."""

    root: Path
    extra_env: dict = field(default_factory=dict)

    @property
    def state(self) -> Path:
        return self.root / "state"

    @property
    def config(self) -> Path:
        return self.root / "jailhooks.toml"

    @property
    def sim(self) -> SimulatedRunner:
        return SimulatedRunner(str(self.state))

    def write_config(self, body: str = "") -> None:
        self.config.write_text(f'[host]\nstate_dir = "{self.state}"\nmode = "simulated"\nlock_timeout = 3\n\n'
                               + textwrap.dedent(body))

    def jail_root(self, name: str) -> Path:
        path = self.root / "jails" / name
        (path / "etc").mkdir(parents=True, exist_ok=True)
        return path

    def create_jail(self, name: str, ip4: str = "", ip6: str = "") -> None:
        """What jail(8) does between exec.prestart and exec.poststart."""
        args = ["-c", f"name={name}", f"path={self.jail_root(name)}", "persist"]
        if ip4:
            args.append(f"ip4.addr={ip4}")
        if ip6:
            args.append(f"ip6.addr={ip6}")
        res = self.sim.run(["/usr/sbin/jail", *args], None, 5, True)
        assert res.returncode == 0, res.stderr

    def remove_jail(self, name: str) -> None:
        res = self.sim.run(["/usr/sbin/jail", "-r", name], None, 5, True)
        assert res.returncode == 0, res.stderr

    def host_state(self) -> dict:
        return self.sim.read()

    def anchor(self, anchor: str) -> dict | None:
        return self.host_state()["pf"]["anchors"].get(anchor)

    def run(self, *args: str, capsys=None) -> Result:
        """The CLI in this process (fast); same code path as the console script."""
        assert capsys is not None
        capsys.readouterr()
        code = main(["--config", str(self.config), *args])
        out = capsys.readouterr()
        return Result(code, out.out, out.err)

    def subprocess(self, *args: str, env: dict | None = None, timeout: float = 60) -> Result:
        """The CLI as a user runs it: a separate process."""
        full_env = {**os.environ, "PYTHONPATH": str(REPO), **self.extra_env, **(env or {})}
        full_env.pop("JAILHOOKS_CONFIG", None)
        proc = subprocess.run([sys.executable, "-m", "jailhooks", "--config", str(self.config), *args],
                              capture_output=True, text=True, env=full_env, timeout=timeout)
        return Result(proc.returncode, proc.stdout, proc.stderr)


@pytest.fixture
def env(tmp_path, monkeypatch) -> Env:
    monkeypatch.delenv("JAILHOOKS_CONFIG", raising=False)
    e = Env(tmp_path)
    e.write_config()
    return e


@pytest.fixture
def cli(env, capsys):
    """cli("run", "start", "web") -> Result, in-process."""
    return lambda *args: env.run(*args, capsys=capsys)


@pytest.fixture(scope="session")
def pg_server():
    """A real PostgreSQL server.  Skipped, saying why, when none can be started;
    under CI (CI=true) that is a failure instead: the fleet tests must run."""
    try:
        import psycopg  # noqa: F401

        from .pgserver import PgServer

        server = PgServer()
    except Exception as exc:  # no binaries, no psycopg, cannot start
        if os.environ.get("CI"):
            pytest.fail(f"PostgreSQL tests cannot run in CI: {exc}")
        pytest.skip(f"PostgreSQL tests skipped: {exc}")
    yield server
    server.destroy()


@pytest.fixture
def pg_url(pg_server) -> str:
    """A fresh, migrated database."""
    from jailhooks.registry.postgres import PostgresRegistry

    url = pg_server.new_database()
    reg = PostgresRegistry(url, 5, check_schema=False)
    reg.migrate()
    reg.close()
    return url
