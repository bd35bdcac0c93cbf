"""The simulated FreeBSD host: jls, jail, pfctl, ipfw, sysctl, route, tcpdump and tail as models,
one module each, on a state store (store.py) with fault injection.

State lives in ``STATE_DIR/simhost/`` (state.json, and a file per jail and per
anchor), updated under an flock so parallel jailhooks processes see one
consistent host, as on FreeBSD.  The files are JSON, to be read by people
as much as by the simulator.  Each command checks its arguments the way the real
tool does (its getopt string from its FreeBSD source) and prints what
FreeBSD 15.1 prints (tests compare against recorded real output).  It models
what the host layer sends (tests/test_sim_scope.py): an option the real tool
has but the simulation does not model fails loudly (exit 70, "not
modelled"), never silently, and one the real tool lacks gets its usage.

Tests and demos create jails with the simulated ``jail -c`` and may inject
faults: ``faults`` entries make a matching command fail, print garbage, or
time out.
"""
from __future__ import annotations

import fcntl
import importlib
import json
import os
from contextlib import contextmanager
from typing import Any, Callable, Iterator

from ..host.runner import CommandTimeout, Result
from .getopt import _Exit
from .store import _fresh_state, _Store, _write, _write_records

TOOLS = ("jls", "jail", "sysctl", "route", "pfctl", "ipfw")


def _command(tool: str) -> Callable | None:
    """The model of TOOL (its module's run), or None if it is not modelled."""
    if tool not in TOOLS:
        return None
    return importlib.import_module(f"{__name__}.{tool}").run


class SimulatedRunner:
    name = "simulated"

    def __init__(self, state_dir: str):
        self.dir = os.path.join(state_dir, "simhost")
        self.path = os.path.join(self.dir, "state.json")
        self.log_path = os.path.join(self.dir, "commands.log")

    # -- state ------------------------------------------------------------------
    @contextmanager
    def state(self) -> Iterator[dict[str, Any]]:
        """The host's state, under the lock.  Each anchor is a file of its own
        (like the kernel, a command costs the same with 10 anchors or 1,000)."""
        os.makedirs(self.dir, mode=0o700, exist_ok=True)
        with open(os.path.join(self.dir, "lock"), "ab") as lock:
            fcntl.flock(lock, fcntl.LOCK_EX)
            try:
                before = self._text()
                st = json.loads(before) if before else _fresh_state()
                st["pf"]["anchors"] = _Store(os.path.join(self.dir, "anchors"))
                st["jails"] = _Store(os.path.join(self.dir, "jails"))
                yield st
                st["pf"].pop("anchors")
                st.pop("jails")
                if not before or st != json.loads(before):
                    _write(self.path, st)
            finally:
                fcntl.flock(lock, fcntl.LOCK_UN)

    def _text(self) -> str:
        try:
            with open(self.path, encoding="utf-8") as fh:
                return fh.read()
        except FileNotFoundError:
            return ""

    def read(self) -> dict[str, Any]:
        """A plain copy of the whole state, anchors included (for tests)."""
        with self.state() as st:
            anchors, jails = dict(st["pf"]["anchors"].items()), dict(st["jails"].items())
            stores = st["pf"].pop("anchors"), st.pop("jails")
            copy = json.loads(json.dumps(st))
            st["pf"]["anchors"], st["jails"] = stores
        copy["pf"]["anchors"], copy["jails"] = anchors, jails
        copy["log"] = self.commands()
        return copy

    # -- the command log: every command run, [tool, arg, ...], one JSON line
    # each, oldest first.  Appended, not kept in state.json, so that a command that only reads
    # (jls, pfctl -s) does not rewrite the host's state.
    LOG_MAX = 1 << 20  # bytes; then the oldest half is dropped

    def _log(self, argv: list[str]) -> None:
        with open(self.log_path, "a", encoding="utf-8") as fh:
            fh.write(json.dumps(argv) + "\n")
            full = fh.tell() > self.LOG_MAX
        if full:
            kept = self.commands()
            _write_records(self.log_path, kept[len(kept) // 2:])

    def commands(self) -> list[list[str]]:
        records = []
        try:
            with open(self.log_path, encoding="utf-8") as fh:
                for line in fh:
                    try:
                        records.append(json.loads(line))
                    except ValueError:  # a line cut short by kill -9
                        break
        except FileNotFoundError:
            pass
        return records

    def clear_log(self) -> None:
        with self.state():
            _write_records(self.log_path, [])

    def add_fault(self, argv_prefix: list[str], *, rc: int = 1, stdout: str = "", stderr: str = "",
                  timeout: bool = False, times: int = -1) -> None:
        """Make commands whose argv starts with ARGV_PREFIX (tool name first) fail."""
        with self.state() as st:
            st["faults"].append({"argv": argv_prefix, "rc": rc, "stdout": stdout, "stderr": stderr,
                                 "timeout": timeout, "times": times})

    def clear_faults(self) -> None:
        with self.state() as st:
            st["faults"] = []

    @property
    def pflog_path(self) -> str:
        """Where the simulated pflogd writes (/var/log/pflog on FreeBSD)."""
        return os.path.join(self.dir, "pflog")

    @property
    def security_path(self) -> str:
        """Where the simulated syslogd writes the security facility (/var/log/security)."""
        return os.path.join(self.dir, "security")

    def log_packet(self, answer: dict) -> str | None:
        """``sim send``: count the packet explain's ANSWER describes, and log it
        where the firewall's rules log it; where, or None when no rule logs."""
        from .ipfw import count, syslog
        from .pflogd import record

        with self.state() as st:
            if answer.get("number") is not None:  # ipfw: counted on the rule (ipfw show), logged to syslog
                count(st, answer)
                return "the security log" if syslog(self.security_path, answer) else None
            return "pflog" if record(st, self.pflog_path, answer) else None

    def add_state(self, src: str, dst: str, label: str = "") -> None:
        with self.state() as st:
            st["states"].append({"src": src, "dst": dst, "label": label})

    # -- dispatch -------------------------------------------------------------------
    def _begin(self, st: dict, words: list[str]) -> dict | None:
        """Log the command WORDS (tool name first); the fault it meets, if any."""
        self._log(words)
        for fault in st["faults"]:
            if words[: len(fault["argv"])] == fault["argv"] and fault["times"] != 0:
                fault["times"] -= 1 if fault["times"] > 0 else 0
                return fault
        return None

    def run(self, argv: list[str], input: str | None, timeout: float, mutating: bool) -> Result:
        if not argv or not os.path.isabs(argv[0]):
            return Result(tuple(argv), 127, "", f"simulated host: {argv[0] if argv else '?'}: "
                          "commands must be given by absolute path\n")
        tool = os.path.basename(argv[0])
        handler = _command(tool)
        if handler is None:
            return Result(tuple(argv), 127, "", f"{argv[0]}: not found (not modelled by the simulated host)\n")
        with self.state() as st:
            fault = self._begin(st, [tool, *argv[1:]])
            if fault is not None:
                if fault["timeout"]:
                    raise CommandTimeout(f"timed out after {timeout:g}s")
                return Result(tuple(argv), fault["rc"], fault["stdout"], fault["stderr"])
            out: list[str] = []
            err: list[str] = []
            try:
                rc = handler(st, argv[1:], input, out, err)
            except _Exit as exc:
                rc = exc.code
        return Result(tuple(argv), rc, "".join(out), "".join(err))

    def stream(self, argv: list[str]):
        """A command that runs until it is stopped: tcpdump capturing the
        simulated pflog0 (sim/tcpdump.py), tail following a log of the
        simulated host (sim/tail.py)."""
        from . import tail, tcpdump
        from .follow import Growing

        tool = os.path.basename(argv[0]) if argv and os.path.isabs(argv[0]) else ""
        if tool not in ("tcpdump", "tail"):
            return _Ended(Result(tuple(argv), 127, "", f"{argv[0] if argv else '?'}: not modelled as a stream by "
                                 "the simulated host\n"))
        err: list[str] = []
        with self.state() as st:
            fault = self._begin(st, [tool, *argv[1:]])
            if fault is not None:
                return _Ended(Result(tuple(argv), fault["rc"], fault["stdout"], fault["stderr"]))
            try:
                rc = tcpdump.follow(argv[1:], err) if tool == "tcpdump" else tail.follow(argv[1:], err, self.dir)
            except _Exit as exc:
                rc = exc.code
        if rc != 0:
            return _Ended(Result(tuple(argv), rc, "", "".join(err)))
        if tool == "tail":
            return Growing(tuple(argv), argv[-1])  # -n 0: from now on; a file made later, from its start
        return tcpdump.capture(tuple(argv), self.pflog_path, "".join(err))


class _Ended:
    """A stream whose command ended at once: no output, its Result at close."""

    def __init__(self, result: Result):
        self.result = result

    def read(self, size: int) -> bytes:
        return b""

    def readline(self) -> bytes:
        return b""

    def close(self) -> Result:
        return self.result
