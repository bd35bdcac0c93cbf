"""A prestart replayed from the jail's plan (plan.py), without loading the
plugins, the registry or the policy.

It does what the full path does, in the same order and under the same lock:
the jail must not run yet and no running jail may hold its addresses (jls);
the steps (routes, the anchor and the record of its text); pf's whole
ruleset read back and compared with the one the plan's proof was made over.
Any doubt, before or after a step, and the steps taken are undone and the
full path runs instead: it fails closed with its own messages, and compiles a
new plan.  So a replay either does exactly what the last full start proved,
or nothing.
"""
from __future__ import annotations

import sys

TYPE_CHECKING = False  # no typing at run time (main.py)
if TYPE_CHECKING:
    from typing import Any, Callable, Optional

from . import logbook
from .plan import holds, load, others_hold_their_own, proof_key


class Stale(Exception):
    """The plan does not fit the host as it is: take the full path."""


def attempt(opts: dict) -> Optional[int]:
    """Replay ``run prestart NAME`` if NAME has a plan that still holds:
    the exit code, or None for the full path."""
    args = opts.get("args", [])
    if (opts.get("manager") or opts["dry_run"] or opts.get("path") or opts.get("ip4") or opts.get("ip6")
            or opts.get("force") or len(args) != 2 or args[0] != "prestart"):
        return None
    from .validate import escaped, jail_name

    name = args[1]
    try:
        jail_name(name)
    except ValueError:
        return None  # the full path says what is wrong with it
    source, state_dir = where(opts["config"])
    why: list[str] = []
    plan = load(state_dir, name, why) if state_dir else None
    # the plan's first input is the config file it was compiled from, as it is now
    if plan is None or plan["inputs"][0][0] != source or plan["host"]["state_dir"] != state_dir:
        if opts["verbose"]:
            reason = why[0] if why else "compiled from another config file"
            sys.stderr.write(escaped(f"jailhooks: {name}: not replayed: {reason}: full path", 2000) + "\n")
        return None
    from .hostmode import make_host
    from .jailfs import locked

    settings = plan["host"]
    host = make_host(settings, announce=None if opts["quiet"] else sys.stderr)
    logbook.configure(settings["syslog_facility"])
    with locked(f"{state_dir}/locks", f"{name}.lock", settings["lock_timeout"],
                f"jail {name}: another jailhooks run holds its lock"):
        changed = holds(plan)  # while this run waited for the lock (a destroy, an edit)
        if changed:
            if opts["verbose"]:
                sys.stderr.write(escaped(f"jailhooks: {name}: not replayed: {changed}: full path", 2000) + "\n")
            return None
        undo: list[Callable[[], Any]] = []
        try:
            _free(host, name, plan["addresses"])
            for step in plan["steps"]:
                _take(host, step, undo)
            _proven(host, plan, name)
        except BaseException as exc:
            for step_back in reversed(undo):
                try:
                    step_back()
                except Exception:  # the full path that follows undoes or redoes it
                    pass
            if isinstance(exc, Exception):
                if opts["verbose"]:
                    reason = str(exc) if isinstance(exc, Stale) else f"{type(exc).__name__}: {exc}"
                    sys.stderr.write(escaped(f"jailhooks: {name}: not replayed: {reason}: full path", 2000) + "\n")
                return None
            raise
    for phase, plugin, text in plan["notes"]:
        if not opts["quiet"]:
            sys.stdout.write(escaped(f"{name}: {phase}: {plugin}: {text}", 4000) + "\n")
        logbook.log("info", f"{name}: {phase}: {plugin}: {text} (replayed)")
    return 0


def where(config: Optional[str]) -> tuple[str, Optional[str]]:
    """(the config file, its [host] state_dir), as the full path would find
    them.  The state_dir is read from the file's plain lines where it is
    written plainly (tomllib and its regular expressions cost a replay more
    than the rest of its Python), else with tomllib.  A wrong reading cannot
    replay anything: a plan is used only if it was compiled from this very
    file (its fingerprint), and so was written to that file's state_dir."""
    import os

    from .paths import absolute_path, default_config_path, default_state_dir

    path = config or os.environ.get("JAILHOOKS_CONFIG") or default_config_path()
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK | getattr(os, "O_CLOEXEC", 0))
    except OSError:
        return path, None  # the full path says what is wrong with it
    with os.fdopen(fd, "rb") as fh:
        import stat

        if not stat.S_ISREG(os.fstat(fh.fileno()).st_mode):
            return path, None
        os.set_blocking(fh.fileno(), True)
        data = fh.read(1 << 20)
    found = _plain_state_dir(data)
    if found is None:
        from .config import read_toml
        from .hostmode import state_dir_of

        raw, source = read_toml(path)
        return source, state_dir_of(raw)
    try:
        return path, absolute_path(found) if found else default_state_dir()
    except ValueError:
        return path, None


def _plain_state_dir(data: bytes) -> Optional[str]:
    """``state_dir = "/path"`` under ``[host]``: the path; "" when the file
    never mentions state_dir (the default); None when it is written any
    other way (a dotted key, an inline table, a literal string, twice)."""
    if b"state_dir" not in data:
        return ""
    try:
        lines = data.decode("utf-8").splitlines()
    except UnicodeDecodeError:
        return None
    table, found = "", []
    for line in lines:
        text = line.strip()
        if text.startswith("["):
            table = text.split("#", 1)[0].strip()
        if "state_dir" not in text:
            continue
        key, eq, value = text.partition("=")
        value = value.strip()
        if table != "[host]" or key.strip() != "state_dir" or not value.startswith('"'):
            return None
        end = value.find('"', 1)
        rest = value[end + 1:].strip() if end > 0 else "x"
        if "\\" in value[:end] or rest and not rest.startswith("#"):
            return None
        found.append(value[1:end])
    return found[0] if len(found) == 1 else None


def _free(host: Any, name: str, addresses: list[str]) -> None:
    """The jail does not run (a re-run takes the full path, which keeps its
    last good rules) and none of its addresses is held by a running jail."""
    for jail in host.jails():
        if jail["name"] == name:
            raise Stale("the jail runs")
        if set(addresses) & set(jail["ip4"] + jail["ip6"]):
            raise Stale(f"jail {jail['name']} holds one of its addresses")


def _take(host: Any, step: tuple, undo: list) -> None:
    kind = step[0]
    if kind == "pf_load":
        anchor, text = step[1:]
        undo.append(lambda: host.pf_flush(anchor))
        host.pf_load(anchor, text)
    elif kind == "route_set":
        family, add, fib, delete = step[1:]
        if host.route_set(family, add, fib, delete):
            undo.append(lambda: host.route("delete", family, delete, fib))
    elif kind == "keep_state":
        from .jailfs import keep_state

        directory, file_name, text = step[1:]
        undo.append(lambda: keep_state(directory, file_name, None))
        keep_state(directory, file_name, text)
    else:
        raise Stale(f"unknown step {kind!r}")


def _proven(host: Any, plan: dict, name: str) -> None:
    """pf holds the ruleset the full start proved the jail's policy over; and
    its FIB exists (route(8) refuses a FIB >= net.fibs, so only a plan
    without routes asks)."""
    if plan["fib"] is not None and not any(step[0] == "route_set" for step in plan["steps"]):
        fibs = host.sysctl("net.fibs")
        if fibs is None or not fibs.isdigit() or int(fibs) <= plan["fib"]:
            raise Stale(f"FIB {plan['fib']} does not exist (net.fibs={fibs})")
    reads = {"pf_running": host.pf_running(), "pf_show_all rules": host.pf_show_all("rules"),
             "pf_show_all nat": host.pf_show_all("nat"), "pf_skipped": host.pf_skipped()}
    key, blocks = proof_key(reads, plan["parent"], plan["component"])  # type: ignore[misc]  # every read is there
    if key != plan["proof"]:
        raise Stale("pf's ruleset is not the one the start was proven over")
    strange = others_hold_their_own(blocks, plan["parent"], plan["component"], plan["host"]["state_dir"])
    if strange:
        raise Stale(strange)
