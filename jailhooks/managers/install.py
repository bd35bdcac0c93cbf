"""`jailhooks install`: what each jail manager needs so that jailhooks runs at
the right moments.

Pure text: ``jailhooks install MANAGER [JAIL]`` prints it; the files in
hooks/ are the same lines and shims (a test keeps them in step).  Facts are
from managers.md: jail(8) substitutes $name in exec.* lines; iocage runs its
exec_* hooks itself without substitution; ezjail's own per-jail file is
rewritten by ezjail-admin, so its hooks go in rc.conf; pot ignores hook
failures.
"""
from __future__ import annotations

import os
import stat
import sys

PHASES = ("prestart", "poststart", "prestop", "poststop")  # what ezjail and pot run (they set no parameters)
ORDER = ("prestart", "created", "poststart", "prestop", "poststop")
# what the built-ins do at poststart without a process of their own: saddr's
# jail -m ip4.nosaddrsel is the jail parameter ip4.nosaddrsel (printed with the
# jail's name), and pf's check repeats the proof prestart has just made
DONE_WITHOUT = {"poststart": {"saddr", "pf"}}


def phases(acting: dict[str, list[str]]) -> tuple[str, ...]:
    """The hooks a manager runs, given ACTING (phase -> plugins that work
    there): prestart does all of a start's work and poststop all of a stop's,
    one process each; created (the ipfw backend: rules naming the jail's new
    JID), poststart and prestop only when a plugin works there."""
    return tuple(p for p in ORDER if p in ("prestart", "poststop")
                 or set(acting.get(p, ())) - DONE_WITHOUT.get(p, set()))
MANAGERS = ("jail.conf", "bastille", "appjail", "ezjail", "iocage", "pot")


def program_path() -> str:
    """The jailhooks program of this install (pip or the port): every line
    `install` prints calls it, so every path it prints exists."""
    return os.path.join(sys.prefix, "bin", "jailhooks")


def command(config: str | None = None) -> str:
    """The program, with ``--config CONFIG`` when a config other than the
    default is in use: jail(8)'s exec.clean drops JAILHOOKS_CONFIG, so the
    hooks would otherwise read another file."""
    if config is None:
        return program_path()
    if not config.startswith("/") or any(c.isspace() or c in "\"'\\$`;|&<>(){}*?[]#~" for c in config):
        raise ValueError(f"config path {config!r} cannot be written into a hook line (use a plain absolute path)")
    return f"{program_path()} --config {config}"


def jail_conf_lines(program: str, hooks: tuple[str, ...] = ("prestart", "poststop")) -> list[str]:
    """PROGRAM: command(config)."""
    width = max(len(p) for p in hooks)
    # "--": a jail named "--help" or "-h" stays a name, never an option
    return [f'exec.{p:<{width}} += "{program} run {p} -- $name";' for p in hooks]


def per_jail_params(fib: int | None, families: list[str]) -> list[str]:
    lines = [f"exec.fib = {fib};"] if fib is not None else []
    return lines + [f"{f}.nosaddrsel;" for f in families]


def render(manager: str, jail: str | None, fib: int | None, families: list[str],
           iocage_hooks: dict[str, str] | None = None, program: str | None = None,
           hooks: tuple[str, ...] = ("prestart", "poststop")) -> str:
    program = program or program_path()
    no_created = [f"# {manager} has no exec.created: the rules naming the jail's JID load at poststart; until then",
                  "# its addresses and UID block hold it (its daemons start under those rules)."]
    out: list[str] = []
    if manager == "appjail":
        # AppJail keeps jail(8)'s parameters in a template of its own, one
        # "key: value" per line; appjail-config converts it to a jail.conf.
        # Appending is "key+: value", as AppJail's Templates guide writes its
        # own exec.prestart lines (appjail-template(5) words it "separated by
        # : or :+"); a key alone (vnet, mount.devfs there) is a boolean.
        out.append(f"# add to the template of jail {jail or 'NAME'} (appjail-config edit -j {jail or 'NAME'}),")
        out.append("# then check it with appjail-config check:")
        out += [f'exec.{p}+: "{program} run {p} -- ${{name}}"' for p in hooks]
        if jail and fib is not None:
            out.append(f"exec.fib: {fib}")
        if jail:
            out += [f"{f}.nosaddrsel" for f in families]  # a boolean by its name alone, as in jail.conf
        out.append("# A template's own `exec.prestart: ...` (without +) replaces these lines: use +: there too.")
    elif manager in ("jail.conf", "bastille"):
        where = {"jail.conf": "the global part of /etc/jail.conf (outside any jail's { })",
                 "bastille": f"the section of /usr/local/bastille/jails/{jail or 'NAME'}/jail.conf"}[manager]
        out.append(f"# add to {where}:")
        out += jail_conf_lines(program, hooks)
        if jail:
            params = per_jail_params(fib, families)
            if params:
                out.append(f"# and to the jail's own section {jail} {{ ... }}, so it holds from creation:")
                out += params
        elif "poststart" not in hooks:
            out.append("# one process per start: each jail's parameters (exec.fib, ip4.nosaddrsel) go in its own")
            out.append("# section; `jailhooks install " + manager + " NAME` prints them, `jailhooks check` finds a missing one.")
        out.append("# A jail's own `exec.prestart = ...` (plain =) replaces the lines above: use += there too.")
    elif manager == "ezjail":
        out.append("# ezjail-admin rewrites /usr/local/etc/ezjail/NAME, dropping hand-added hooks; rc.conf's")
        out.append("# global jail_exec_* variables survive and apply to every rc.d/jail (and so ezjail) jail:")
        out += [f"jail_exec_{p}0='{program} run {p} -- $name'" for p in PHASES]
        if "created" in hooks:
            out += no_created
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
            for p in hooks:
                previous = (iocage_hooks or {}).get(f"exec_{p}", "/usr/bin/true")
                chain = "" if previous in ("", "/usr/bin/true") else f" {previous}"
                out.append(f'iocage set exec_{p}="{program} hook iocage {p} {kernel}{chain}" {name}')
            if fib is not None:
                out.append(f"iocage set exec_fib={fib} {name}")
            for f in families:
                out.append(f"iocage set {f}_saddrsel=0 {name}")
    elif manager == "pot":
        name = jail or "NAME"
        out.append("# pot copies hook scripts into the pot: these are one-line calls of jailhooks, so an")
        out.append("# upgrade of jailhooks reaches the pot without a new set-hook.")
        out.append("d=$(mktemp -d) && for p in prestart poststart prestop poststop; do")
        out.append(f"  printf '#!/bin/sh\\nexec %s hook pot %s\\n' '{program}' \"$p\" > \"$d/$p.sh\" && chmod 755 \"$d/$p.sh\"")
        out.append(f'done && pot set-hook -p {name} -s "$d/prestart.sh" -S "$d/poststart.sh" '
                   f'-t "$d/prestop.sh" -T "$d/poststop.sh"; rm -rf "$d"')
        if "created" in hooks:
            out += no_created
        out.append("# WARNING: pot ignores hook exit codes: a failing prestart does not stop the start.")
        out.append("# Run `jailhooks check` and `jailhooks sync` from cron to catch a pot without its rules.")
    else:
        raise ValueError(manager)
    return "\n".join(out) + "\n"


# -- --apply: edit the files that only need lines added (with a backup) ---------------

def _write_with_backup(path: str, text: str) -> str:
    """Replace PATH atomically, keeping its mode; returns the backup's name."""
    import shutil
    import time

    from ..jailfs import replace_file

    backup = f"{path}.jailhooks-{time.strftime('%Y%m%d%H%M%S')}.bak"
    shutil.copy2(path, backup)
    # its bytes round-trip unchanged (surrogateescape), its mode is kept, and it is fsync'ed
    replace_file(path, text.encode("utf-8", "surrogateescape"), stat.S_IMODE(os.stat(path).st_mode))
    return backup


def _squash(line: str) -> str:
    return " ".join(line.split())


def apply_jail_conf(path: str, program: str, hooks: tuple[str, ...] = ("prestart", "poststop")) -> tuple[list[str], str | None]:
    """Add the four hook lines to the global part of a jail.conf (before the
    first jail section) unless they are there.  (added lines, backup or None)."""
    with open(path, encoding="utf-8", errors="surrogateescape") as fh:
        text = fh.read()
    lines = jail_conf_lines(program, hooks)
    # lines of an older jailhooks, without "--" before $name: upgraded in place
    older = {_squash(l.replace(" -- $name", " $name")): l for l in lines}
    present = {_squash(l) for l in text.splitlines()}
    missing = [l for l in lines if _squash(l) not in present and _squash(l.replace(" -- $name", " $name")) not in present]
    upgraded = [l for l in lines if _squash(l.replace(" -- $name", " $name")) in present]
    if not missing and not upgraded:
        return [], None
    block = "# jailhooks: per-jail firewall (jailhooks install jail.conf)\n" + "\n".join(missing) + "\n\n"
    out, inserted = [], not missing
    for line in text.splitlines(keepends=True):  # before the first "name {" line: still the global part
        if not inserted and line.rstrip().endswith("{") and not line.lstrip().startswith(("#", "//")):
            out.append(block)
            inserted = True
        newer = older.get(_squash(line.rstrip("\n")))
        out.append(newer + "\n" if newer else line)
    if not inserted:
        out.append(("\n" if text and not text.endswith("\n") else "") + block)
    return missing + upgraded, _write_with_backup(path, "".join(out))


def apply_rc_conf(path: str, program: str) -> tuple[list[str], str | None]:
    """ezjail: add global jail_exec_PHASE<N> lines to rc.conf, at the first free
    index after the user's own, so existing hooks keep running."""
    import re

    with open(path, encoding="utf-8", errors="surrogateescape") as fh:
        text = fh.read()
    added = []
    for phase in PHASES:
        command = f"{program} run {phase} -- $name"
        values = {int(m.group(1)): m.group(3) for m in
                  re.finditer(rf"^\s*jail_exec_{phase}(\d+)=(['\"]?)(.*?)\2\s*$", text, re.M)}
        if command in values.values() or command.replace(" -- ", " ") in values.values():
            continue
        index = 0
        while index in values:  # rc.d/jail stops at the first gap
            index += 1
        added.append(f"jail_exec_{phase}{index}='{command}'")
    if not added:
        return [], None
    body = text + ("" if text.endswith("\n") or not text else "\n") + "# jailhooks (jailhooks install ezjail)\n" \
        + "\n".join(added) + "\n"
    return added, _write_with_backup(path, body)
