"""Facts of a jail from its manager's own files: jail.conf (and
jail.conf.d), Bastille, ezjail and iocage.  Asked after jls (a running
jail's kernel facts win) and before ``[jail.NAME]`` in jailhooks' config, so
``jailhooks run start NAME`` works by hand without options."""
from __future__ import annotations

import os

from .. import hookimpl, validate
from ..config import Field, Section, absolute_path, choice, list_of
from ..types import Jail
from ..errors import DataError

READERS = ("jailconf", "bastille", "ezjail", "iocage")
SECTION = Section("managers", fields={
    "readers": Field(list_of(choice(*READERS)), list(READERS), "which managers' files to read, in order"),
    "jail_conf": Field(absolute_path, "/etc/jail.conf"),
    "jail_conf_d": Field(absolute_path, "/etc/jail.conf.d"),
    "bastille_jails": Field(absolute_path, "/usr/local/bastille/jails"),
    "ezjail_dir": Field(absolute_path, "/usr/local/etc/ezjail"),
    "iocroot": Field(absolute_path, "/iocage", "mountpoint of POOL/iocage"),
    "rc_conf": Field(absolute_path, "/etc/rc.conf", "where `install ezjail --apply` adds its lines"),
})


@hookimpl
def jailhooks_config_sections():
    return [SECTION]


def _there(path: str, isdir: bool = False) -> bool:
    """Does PATH exist?  Noted: a file that appears later changes the facts (plan.py)."""
    from ..managers import note_read

    note_read(path)
    return os.path.isdir(path) if isdir else os.path.exists(path)


def _read(reader: str, sec: dict, name: str) -> tuple[dict | None, str]:
    # A manager whose files are absent is not installed here: skip it before
    # importing its reader (this runs on every jail start).
    if reader == "jailconf":
        for path in (os.path.join(sec["jail_conf_d"], f"{name}.conf"), sec["jail_conf"]):
            if _there(path):
                from ..managers import jailconf

                found = jailconf.read(path, name)
                if found:
                    return found, path
        return None, ""
    if reader == "bastille":
        path = os.path.join(sec["bastille_jails"], name, "jail.conf")
        if not _there(path):
            return None, path
        from ..managers import jailconf

        return jailconf.read(path, name), path
    if reader == "ezjail":
        if not _there(sec["ezjail_dir"], isdir=True):
            return None, sec["ezjail_dir"]
        from ..managers import ezjail

        return ezjail.read(sec["ezjail_dir"], name), os.path.join(sec["ezjail_dir"], ezjail.safename(name))
    if not _there(os.path.join(sec["iocroot"], "jails"), isdir=True):
        return None, sec["iocroot"]
    from ..managers import iocage

    return iocage.read(sec["iocroot"], name), os.path.join(sec["iocroot"], "jails", iocage.iocage_name(name))


@hookimpl
def jailhooks_jail_facts(name, settings):
    sec = settings.section("managers")
    for reader in sec["readers"]:
        found, where = _read(reader, sec, name)
        if found is None:
            continue
        try:
            ip4 = tuple(validate.jail_address(a, 4) for a in found["ip4"])
            ip6 = tuple(validate.jail_address(a, 6) for a in found["ip6"])
            path = absolute_path(found["path"]) if found["path"] else None
        except ValueError as exc:
            raise DataError(f"{where}: jail {name}: {exc}") from None
        return Jail(name=name, path=path, ip4=ip4, ip6=ip6, hostname=found.get("hostname"), source=reader,
                    vnet=bool(found.get("vnet")))
    return None


@hookimpl
def jailhooks_check(settings, host, registry, jail):
    """jail.conf jails whose own exec.* line replaced the global jailhooks one."""
    from ..managers import jailconf

    sec = settings.section("managers")
    if "jailconf" not in sec["readers"]:
        return None
    found = []
    path = sec["jail_conf"]
    names = [jail.name] if jail is not None else jailconf.jail_names(path)
    every = {}
    for name in names:
        try:
            every[name] = jailconf.exec_hooks(path, name) if os.path.exists(path) else {}
        except DataError as exc:
            return [("error", str(exc))]
    # prestart and poststop always; created, poststart and prestop where install printed them (a
    # plugin works there): a phase one jail runs jailhooks at, every jail of the file needs
    phases = [p for p in ("prestart", "created", "poststart", "prestop", "poststop") if p in ("prestart", "poststop")
              or any(f" run {p} " in cmd and "jailhooks" in cmd for hooks in every.values() for cmd in hooks.get(f"exec.{p}", []))]
    for name, hooks in every.items():
        if not any("jailhooks" in " ".join(v) for v in hooks.values()):
            continue  # this jail.conf does not use jailhooks
        for phase in phases:
            # the program's path, then maybe --config FILE, then "run PHASE"
            if not any("jailhooks" in cmd and f" run {phase} " in cmd for cmd in hooks.get(f"exec.{phase}", [])):
                found.append(("error", f"{path}: jail {name}: exec.{phase} does not run jailhooks (its own "
                                       f"'exec.{phase} = ...' replaces the global '+=' line): it runs without "
                                       "its firewall; use += there"))
    return found
