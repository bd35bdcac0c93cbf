"""The simulated jls(8): what FreeBSD 15.1 prints (tests/test_fixtures_freebsd.py)."""
from __future__ import annotations

import json
from typing import Any

from .getopt import not_modelled, options


JLS_PARAMS = {"jid", "name", "path", "host.hostname", "ip4.addr", "ip6.addr", "ip4.saddrsel",
              "ip6.saddrsel", "persist", "dying", "vnet"}

def run(st, args, input, out, err) -> int:
    json_mode = False
    if args[:1] == ["--libxo"] and len(args) > 1:
        json_mode, args = args[1].split(",")[0] == "json", args[2:]
    elif args and args[0].startswith("--libxo="):
        json_mode, args = args[0][8:].split(",")[0] == "json", args[1:]
    flags, opts, params = options(args, "jls", "cdhj:Nnqsv", "cjNnqv", "usage: jls [-dhNnqv] [-j jail] [param ...]\n",
                                  1, err)
    if "-n" in flags and not params:
        return not_modelled("jls", "-n without parameters", err)
    for p in params:
        if p not in JLS_PARAMS:
            err.append(f"jls: unknown parameter: {p}\n")
            return 1
    selector = dict(opts).get("-j")
    if selector is not None and not selector.isdigit():
        jails = [j for j in [st["jails"].get(selector)] if j is not None]
    else:
        jails = sorted(st["jails"].values(), key=lambda j: j["jid"])
        if selector is not None:
            jails = [j for j in jails if j["jid"] == int(selector)]
    if "-c" in flags:
        return 0 if jails else 1
    verbose = "-v" in flags
    if json_mode:
        out.append('{"__version": "2", "jail-information": {"jail": [')
        out.append(", ".join(_jls_json(j, params, verbose, "-n" in flags) for j in jails))
        out.append("]}}\n")
    else:
        if not params:
            out.append(_jls_header(verbose, "-N" in flags))
        for j in jails:
            out.append(_jls_text(j, params, verbose, "-N" in flags, "-n" in flags, "-q" in flags))
    if selector is not None and not jails:
        err.append(f'jls: jail "{selector}" not found\n')
        return 1
    return 0

def _value(j: dict, p: str) -> Any:
    return {"jid": j["jid"], "name": j["name"], "path": j["path"], "host.hostname": j["hostname"],
            "ip4.addr": j["ip4"], "ip6.addr": j["ip6"], "ip4.saddrsel": j["ip4.saddrsel"],
            "ip6.saddrsel": j["ip6.saddrsel"], "persist": j["persist"], "dying": False,
            "vnet": j.get("vnet", "inherit")}[p]

def _jls_json(j: dict, params: list[str], verbose: bool, n: bool) -> str:
    if not params:
        if verbose:
            return (f'{{"jid":{j["jid"]},"hostname":{json.dumps(j["hostname"])},"path":{json.dumps(j["path"])},'
                    f'"name":{json.dumps(j["name"])},"state":"ACTIVE","cpusetid":{j["cpusetid"]}, '
                    f'"ipv4_addrs": [{",".join(json.dumps(a) for a in j["ip4"])}], '
                    f'"ipv6_addrs": [{",".join(json.dumps(a) for a in j["ip6"])}]}}')
        ipv4 = j["ip4"][0] if j["ip4"] else ""
        return (f'{{"jid":{j["jid"]},"ipv4":{json.dumps(ipv4)},"hostname":{json.dumps(j["hostname"])},'
                f'"path":{json.dumps(j["path"])}}}')
    parts = []
    for p in params:
        v = _value(j, p)
        if isinstance(v, list):
            parts.append(f' {json.dumps(p)}: [{",".join(json.dumps(a) for a in v)}]')
        elif isinstance(v, bool):
            parts.append(f'{json.dumps(p)}:{"true" if v else "false"}' if n
                         else f'{json.dumps(p)}:"{"true" if v else "false"}"')
        else:
            parts.append(f"{json.dumps(p)}:{json.dumps(str(v))}")
    return "{" + ",".join(parts) + "}"

def _jls_header(verbose: bool, names: bool) -> str:
    if verbose:
        return ("   JID  Hostname                      Path\n        Name                          State\n"
                "        CPUSetID\n        IP Address(es)\n")
    first = f" {'JID':<15} " if names else "   JID  "  # -N: the name, "%-15s", in the jid's place
    return f"{first}IP Address      Hostname                      Path\n"

def _jls_text(j: dict, params: list[str], verbose: bool, names: bool, n: bool, q: bool) -> str:
    if params:
        vals = []
        for p in params:
            v = _value(j, p)
            if isinstance(v, bool):
                text = (p if v else p.replace(".", ".no", 1) if "." in p else "no" + p) if n else str(v).lower()
                vals.append(text)
                continue
            if isinstance(v, list):
                text = ",".join(v) if v else ('""' if q else "" if n else "-")
            else:
                text = str(v) if str(v) != "" else '""'
            vals.append(f"{p}={text}" if n else text)
        return " ".join(vals) + "\n"
    if verbose:
        lines = [f"{j['jid']:6d}  {j['hostname']:<29.29} {j['path']:.74}\n".replace("  \n", "\n"),
                 f"        {j['name']:<29.29} ACTIVE\n", f"        {j['cpusetid']}\n"]
        lines += [f"        {a}\n" for a in j["ip4"] + j["ip6"]]
        return "".join(lines)
    ip = j["ip4"][0] if j["ip4"] else ""
    first = f" {j['name']:<15} " if names else f"{j['jid']:6d}  "
    return f"{first}{ip:<15.15} {j['hostname']:<29.29} {j['path']:.74}\n"
