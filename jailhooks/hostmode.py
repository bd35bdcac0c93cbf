"""Which host layer a run gets: FreeBSD's own commands, or the simulation
(the host layer itself knows no simulator).  Kept apart from app.py so that a
replayed start (replay.py) can make one without loading the plugins."""
from __future__ import annotations

import sys

TYPE_CHECKING = False  # no typing at run time (main.py)
if TYPE_CHECKING:
    from typing import Any

from .host import DryRunRunner, Host, Runner, SubprocessRunner


def state_dir_of(raw: dict) -> str | None:
    """[host] state_dir before full validation (plugins load first); None if bad."""
    from .paths import absolute_path, default_state_dir

    host = raw.get("host")
    value = host.get("state_dir") if isinstance(host, dict) else None
    try:
        return absolute_path(value) if value is not None else default_state_dir()
    except ValueError:
        return None


def make_host(host_settings: dict[str, Any], dry_run: bool = False, announce=sys.stderr) -> Host:
    """The host layer with its runner, chosen here (the host layer knows no
    simulator): FreeBSD runs the real commands, elsewhere a simulation."""
    mode = host_settings["mode"]
    if mode == "auto":
        mode = "freebsd" if sys.platform.startswith("freebsd") else "simulated"
        if mode == "simulated" and announce is not None:
            announce.write(f"jailhooks: not on FreeBSD: using the simulated host in {host_settings['state_dir']}\n")
    runner: Runner
    if mode == "freebsd":
        runner = SubprocessRunner()
    else:
        from .sim import SimulatedRunner

        runner = SimulatedRunner(host_settings["state_dir"])
    if dry_run:
        runner = DryRunRunner(runner)
    return Host(runner, host_settings["commands"], host_settings["timeout"])
