"""What each jail manager needs so that jailhooks runs at the right moments.

Pure text: ``jailhooks install MANAGER [JAIL]`` prints it; the files in
hooks/ are the same lines and shims (a test keeps them in step).  Facts are
from managers.md: jail(8) substitutes $name in exec.* lines; iocage runs its
exec_* hooks itself without substitution; ezjail's own per-jail file is
rewritten by ezjail-admin, so its hooks go in rc.conf; pot ignores hook
failures.
"""
from __future__ import annotations

import os
import sys

PHASES = ("prestart", "poststart", "prestop", "poststop")
MANAGERS = ("jail.conf", "bastille", "appjail", "ezjail", "iocage", "pot")


def prefix_paths() -> tuple[str, str]:
    """(the jailhooks program, the libexec dir of the shims) for this install."""
    return (os.path.join(sys.prefix, "bin", "jailhooks"), os.path.join(sys.prefix, "libexec", "jailhooks"))


def jail_conf_lines(program: str) -> list[str]:
    width = max(len(p) for p in PHASES)
    return [f'exec.{p:<{width}} += "{program} run {p} $name";' for p in PHASES]


def per_jail_params(fib: int | None, families: list[str]) -> list[str]:
    lines = [f"exec.fib = {fib};"] if fib is not None else []
    return lines + [f"{f}.nosaddrsel;" for f in families]


def render(manager: str, jail: str | None, fib: int | None, families: list[str],
           iocage_hooks: dict[str, str] | None = None) -> str:
    program, libexec = prefix_paths()
    out: list[str] = []
    if manager in ("jail.conf", "bastille", "appjail"):
        where = {"jail.conf": "the global part of /etc/jail.conf (outside any jail's { })",
                 "bastille": f"the section of /usr/local/bastille/jails/{jail or 'NAME'}/jail.conf",
                 "appjail": f"the template of the jail (appjail config set -j {jail or 'NAME'} ...)"}[manager]
        out.append(f"# add to {where}:")
        out += jail_conf_lines(program)
        if jail:
            params = per_jail_params(fib, families)
            if params:
                out.append(f"# and to the jail's own section {jail} {{ ... }}, so it holds from creation:")
                out += params
        out.append("# A jail's own `exec.prestart = ...` (plain =) replaces the lines above: use += there too.")
    elif manager == "ezjail":
        out.append("# ezjail-admin rewrites /usr/local/etc/ezjail/NAME, dropping hand-added hooks; rc.conf's")
        out.append("# global jail_exec_* variables survive and apply to every rc.d/jail (and so ezjail) jail:")
        out += [f"jail_exec_{p}0='{program} run {p} $name'" for p in PHASES]
        out.append("# (index 0: a jail's own jail_NAME_exec_prestart0 would override the global one)")
        if jail and fib is not None:
            out.append(f"ezjail-admin config -f {fib} {jail}")
        if jail and families:
            out.append("# saddrsel: jailhooks turns it off on the running jail at poststart (jail -m)")
    elif manager == "iocage":
        if not jail:
            out.append("# iocage runs its exec_* hooks without $name substitution: give the jail: jailhooks install iocage NAME")
        else:
            name = jail[4:] if jail.startswith("ioc-") else jail
            kernel = "ioc-" + name.replace(".", "_")
            for p in PHASES:
                previous = (iocage_hooks or {}).get(f"exec_{p}", "/usr/bin/true")
                chain = "" if previous in ("", "/usr/bin/true") else f" {previous}"
                out.append(f'iocage set exec_{p}="{libexec}/iocage-hook {p} {kernel}{chain}" {name}')
            if fib is not None:
                out.append(f"iocage set exec_fib={fib} {name}")
            for f in families:
                out.append(f"iocage set {f}_saddrsel=0 {name}")
    elif manager == "pot":
        name = jail or "NAME"
        hook = f"{libexec}/pot-hook"
        out.append(f"pot set-hook -p {name} -s {hook} -S {hook} -t {hook} -T {hook}")
        out.append("# WARNING: pot ignores hook exit codes: a failing prestart does not stop the start.")
        out.append("# Run `jailhooks check` and `jailhooks sync` from cron to catch a pot without its rules.")
    else:
        raise ValueError(manager)
    return "\n".join(out) + "\n"
