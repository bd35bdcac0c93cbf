"""A pytest plugin for testing jailhooks plugins (and jailhooks itself) on the
simulated FreeBSD host: installed with jailhooks (the ``pytest11`` entry
point), so a plugin's tests just ask for the ``jailhooks_env`` fixture::

    def test_my_rule(jailhooks_env):
        env = jailhooks_env
        env.write_plugin("myplugin", MYPLUGIN_SOURCE)  # or an installed plugin
        env.write_config('plugins = ["myplugin"]', '[jail.web]\\nip4 = "192.0.2.10"\\n')
        env.create_jail("web", ip4="192.0.2.10")
        assert env.run("run", "start", "web").code == 0
        assert "port = 5432" in "\\n".join(env.anchor("jailhooks/web")["filter"])

Everything goes through the jailhooks command line, in this process (as
``jailhooks`` would run), against a simulated host in a temporary directory.
"""
from __future__ import annotations

import importlib
import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path
from typing import Any, Iterator

import pytest

__all__ = ["Result", "SimHost", "jailhooks_env"]


class Result:
    """A command's exit code and output."""

    def __init__(self, code: int, out: str, err: str) -> None:
        self.code, self.out, self.err = code, out, err

    def __repr__(self) -> str:
        return f"Result(code={self.code}, out={self.out!r}, err={self.err!r})"

    def json(self) -> Any:
        return json.loads(self.out)

    def jails(self) -> list[dict]:
        """``status --json``: one flat record per jail (core keys by their short
        names, then every plugin's keys), for assertions."""
        doc = self.json()
        assert doc["__version"] == "1" and list(doc) == ["__version", "jailhooks-status"], doc
        return [{"jail": r["name"], "running": r["running"], "jid": r["jid"], "path": r["path"],
                 "ip4": r["ip4.addr"], "ip6": r["ip6.addr"],
                 **{k: v for extra in r["plugins"].values() for k, v in extra.items()}}
                for r in doc["jailhooks-status"]["jail"]]


class SimHost:
    """A config file and a simulated FreeBSD host in ROOT."""

    LOCK_TIMEOUT = 3  # seconds a run waits for a jail's lock ([host] lock_timeout)

    def __init__(self, root: Path, capsys: Any = None) -> None:
        self.root = Path(root)
        self.root.mkdir(parents=True, exist_ok=True)
        self.capsys = capsys
        self.extra_env: dict[str, str] = {}
        self._plugins: list[str] = []
        self.write_config()

    @property
    def state(self) -> Path:
        return self.root / "state"

    @property
    def config(self) -> Path:
        return self.root / "jailhooks.toml"

    @property
    def sim(self):
        from .sim import SimulatedRunner

        return SimulatedRunner(str(self.state))

    def write_config(self, *parts: str) -> None:
        """The config: PARTS (TOML text) after a ``[host]`` table that points at
        the simulated host.  Top-level keys such as ``plugins`` go in a part of
        their own before any table."""
        top = [textwrap.dedent(p) for p in parts if not p.lstrip().startswith("[")]
        rest = [textwrap.dedent(p) for p in parts if p.lstrip().startswith("[")]
        self.config.write_text("".join(t + "\n" for t in top)
                               + f'[host]\nstate_dir = "{self.state}"\nmode = "simulated"\nlock_timeout = {self.LOCK_TIMEOUT}\n\n'
                               + "".join(rest))

    @property
    def site(self) -> Path:
        """Where write_plugin puts plugin modules: on the import path of run()
        (from the first write_plugin until close()) and of subprocess()."""
        return self.root / "site"

    def write_plugin(self, name: str, source: str) -> Path:
        """A plugin module NAME.py made of SOURCE (dedented) in ``site``; list it
        in the config's ``plugins`` (or give it an entry point there) to load it."""
        self.site.mkdir(exist_ok=True)
        path = self.site / f"{name}.py"
        path.write_text(textwrap.dedent(source))
        if str(self.site) not in sys.path:
            sys.path.insert(0, str(self.site))
        sys.modules.pop(name, None)  # a module of that name that another test wrote
        importlib.invalidate_caches()
        self._plugins.append(name)
        return path

    def close(self) -> None:
        """Take back what write_plugin added to this process's imports."""
        for name in self._plugins:
            sys.modules.pop(name, None)
        if str(self.site) in sys.path:
            sys.path.remove(str(self.site))

    def jail_root(self, name: str) -> Path:
        path = self.root / "jails" / name
        (path / "etc").mkdir(parents=True, exist_ok=True)
        return path

    def create_jail(self, name: str, ip4: str = "", ip6: str = "", path: Path | None = None) -> None:
        """What jail(8) does between exec.prestart and exec.poststart (the
        jail's root: PATH, or jail_root(NAME))."""
        args = ["-c", f"name={name}", f"path={path or self.jail_root(name)}", "persist"]
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
        """What pf holds in ANCHOR (filter and nat rules as pfctl prints them,
        tables), or None."""
        return self.host_state()["pf"]["anchors"].get(anchor)

    def run(self, *args: str) -> Result:
        """The jailhooks command line, in this process (its output through
        pytest's capsys when there is one, else caught here)."""
        from .main import main

        argv = ["--config", str(self.config), *args]
        if self.capsys is None:
            import contextlib
            import io

            out, err = io.StringIO(), io.StringIO()
            with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
                code = main(argv)
            return Result(code, out.getvalue(), err.getvalue())
        self.capsys.readouterr()
        code = main(argv)
        captured = self.capsys.readouterr()
        return Result(code, captured.out, captured.err)

    def subprocess(self, *args: str, env: dict | None = None, timeout: float = 60) -> Result:
        """The jailhooks command line as a user runs it: a process of its own."""
        proc = subprocess.run(self._argv(args), capture_output=True, text=True, env=self._env(env), timeout=timeout)
        return Result(proc.returncode, proc.stdout, proc.stderr)

    def popen(self, *args: str, env: dict | None = None) -> "subprocess.Popen[str]":
        """The jailhooks command line in a process of its own that runs on
        (``log --follow``): read its stdout and stderr as they come."""
        return subprocess.Popen(self._argv(args), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                                env=self._env(env))

    def _argv(self, args: tuple[str, ...]) -> list[str]:
        return [sys.executable, "-m", "jailhooks", "--config", str(self.config), *args]

    def _env(self, env: dict | None) -> dict:
        src = str(Path(__file__).resolve().parent.parent)
        site = str(self.site) if self.site.is_dir() else ""
        path = os.pathsep.join(p for p in (self.extra_env.get("PYTHONPATH", ""), site, src,
                                           os.environ.get("PYTHONPATH", "")) if p)
        full_env = {**os.environ, **self.extra_env, **(env or {}), "PYTHONPATH": path}
        full_env.pop("JAILHOOKS_CONFIG", None)
        return full_env


@pytest.fixture
def jailhooks_env(tmp_path, monkeypatch, capsys) -> Iterator[SimHost]:
    """A simulated FreeBSD host and a config for it, in a temporary directory."""
    monkeypatch.delenv("JAILHOOKS_CONFIG", raising=False)
    env = SimHost(tmp_path, capsys)
    yield env
    env.close()
