"""The simulated jail(8): -c, -m and -r with parameters on the command line."""
from __future__ import annotations

import ipaddress
from typing import Any

from .getopt import not_modelled, options


def run(st, args, input, out, err) -> int:
    # usr.sbin/jail/jail.c: getopt(argc, argv, "cde:f:hiJ:lmn:p:qrRs:u:U:v")
    flags, opts, rest = options(args, "jail", "cde:f:hiJ:lmn:p:qrRs:u:U:v", "cdmrRq",
                                "usage: jail [-dhilqv] [-J jid_file] [-u username] [-U username]\n"
                                "            -[cmr] param=value ... [command=command ...]\n", 1, err)
    quiet = "-q" in flags
    if flags & {"-r", "-R"}:
        if len(rest) != 1:
            return not_modelled("jail", "-r without exactly one jail", err)
        j = _find(st, rest[0])
        if j is None:
            err.append(f'jail: "{rest[0]}" not found\n')
            return 1
        del st["jails"][j["name"]]
        if not quiet:
            out.append(f"{j['name']}: removed\n")
        return 0
    params: dict[str, Any] = {}
    for item in rest:
        key, eq, value = item.partition("=")
        bool_key = key
        if key.startswith("no") and not eq and key[2:] in ("persist",):
            bool_key, value, eq = key[2:], "false", "="
        elif ".no" in key and not eq:
            bool_key, value, eq = key.replace(".no", ".", 1), "false", "="
        if bool_key in ("persist", "ip4.saddrsel", "ip6.saddrsel"):
            if not eq:
                value = "true"
            if value not in ("true", "false"):
                err.append(f"jail: {bool_key}: unknown boolean value \"{value}\"\n")
                return 1
            params[bool_key] = value == "true"
            continue
        if key == "vnet" and not eq:  # "vnet;" as Bastille writes it: the new stack
            value = "new"
        elif key == "vnet" and value not in ("new", "inherit"):
            err.append(f"jail: vnet: unknown value \"{value}\"\n")
            return 1
        if bool_key not in ("name", "jid", "path", "host.hostname", "ip4.addr", "ip6.addr", "vnet"):
            err.append(f"jail: unknown parameter: {key}\n")
            return 1
        params[bool_key] = value
    try:
        ip4 = [str(ipaddress.IPv4Address(a)) for a in params["ip4.addr"].split(",")] if params.get("ip4.addr") else None
        ip6 = [str(ipaddress.IPv6Address(a)) for a in params["ip6.addr"].split(",")] if params.get("ip6.addr") else None
    except ValueError as exc:
        err.append(f"jail: {exc}\n")
        return 1
    if "-c" in flags:
        name = params.get("name")
        if not name:
            err.append("jail: a name is required here\n")
            return 1
        if "." in name and name.rsplit(".", 1)[0] not in st["jails"]:
            # kern_jail.c: a child of a parent that does not exist is ENOENT
            # (jail "PARENT" not found); jail(8)'s wording of it is not modelled
            return not_modelled("jail", "creating a child of a jail that does not exist", err)
        if name in st["jails"]:  # jail.c: jail_quoted_warnx(j, "already exists", NULL), exit 1
            err.append(f'jail: "{name}" already exists\n')
            return 1
        if not params.get("persist"):
            err.append(f"jail: {name}: no command specified (use persist)\n")
            return 1
        jid = st["next_jid"]
        st["next_jid"] += 1
        st["jails"][name] = {"jid": jid, "name": name, "path": params.get("path", "/"),
                             "hostname": params.get("host.hostname", ""), "ip4": ip4 or [],
                             "ip6": ip6 or [], "ip4.saddrsel": params.get("ip4.saddrsel", True),
                             "ip6.saddrsel": params.get("ip6.saddrsel", True), "persist": True,
                             "vnet": params.get("vnet", "inherit"),
                             "cpusetid": 2 + jid}
        if not quiet:
            out.append(f"{name}: created\n")
        return 0
    if "-m" in flags:
        ident = params.pop("name", None) or params.pop("jid", None)
        j = _find(st, ident) if ident else None
        if j is None:
            # jail.c, JF_SET: jail_quoted_warnx(j, "not found", "no jail specified"), exit 1
            err.append(f'jail: "{ident}" not found\n' if ident else "jail: no jail specified\n")
            return 1
        if "path" in params:
            err.append(f"jail: {j['name']}: path cannot be changed after creation\n")
            return 1
        for key, value in params.items():
            target = {"host.hostname": "hostname", "ip4.addr": "ip4", "ip6.addr": "ip6"}.get(key, key)
            j[target] = {"ip4.addr": ip4, "ip6.addr": ip6}.get(key, value) if key in ("ip4.addr", "ip6.addr") else value
        st["jails"][j["name"]] = j
        if not quiet:
            out.append(f"{j['name']}: updated\n")
        return 0
    err.append("jail: one of -c, -m or -r is required here\n")
    return 1

def _find(st, ident: str) -> dict | None:
    if ident.isdigit():
        return next((j for j in st["jails"].values() if j["jid"] == int(ident)), None)
    return st["jails"].get(ident)
