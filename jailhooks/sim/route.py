"""The simulated route(8): per-FIB tables, as sbin/route/route.c reports."""
from __future__ import annotations

import ipaddress

from .getopt import not_modelled, options

USAGE = "usage: route [-j jail] [-46dnqtv] command [[modifiers] args]\n"


# Messages follow sbin/route/route.c: per-route results on stdout
# ("add net D: gateway G fib N[: error]"), netlink errors on stderr.
def run(st, args, input, out, err) -> int:
    # route(8): route [-j jail] [-46dnqtv] command ...; -d, -t and -v change
    # what route prints or does, which is not modelled
    flags, _, rest = options(args, "route", "46dj:nqtv", "46nq", USAGE, 64, err)
    quiet = "-q" in flags
    if rest and rest[0] == "monitor":
        return not_modelled("route", "monitor", err)
    if not rest or rest[0] not in ("add", "change", "delete", "get", "flush"):
        err.append(USAGE)
        return 64
    verb, rest = rest[0], rest[1:]
    fib, dest, gateway, iface, kind = "0", None, "", False, "net"
    i = 0
    while i < len(rest):
        tok = rest[i]
        if tok == "-fib" and i + 1 < len(rest):
            fib, i = rest[i + 1], i + 2
            continue
        if tok in ("-net", "-host") and i + 1 < len(rest):
            kind, dest, i = tok[1:], rest[i + 1], i + 2
            continue
        if tok in ("-iface", "-interface") and i + 1 < len(rest):
            gateway, iface, i = rest[i + 1], True, i + 2
            continue
        if tok == "default" and dest is None:
            dest = "default"
        elif dest is None:
            dest = tok
        elif not gateway:
            gateway = tok
        else:
            err.append(f"route: bad keyword: {tok}\n")
            return 64
        i += 1
    if not fib.isdigit() or int(fib) >= int(st["sysctl"]["net.fibs"]):
        # route.c: fiboptlist_csv() refuses a FIB >= net.fibs, then errx(EX_USAGE, ...)
        err.append(f"route: invalid fib number: {fib}\n")
        return 64
    table = st["routes"].setdefault(fib, {})
    if verb == "flush":  # route.c flushroutes_fib(): every RTF_GATEWAY route; interface routes stay
        for key in [k for k, r in table.items() if not r["iface"]]:
            del table[key]
        return 0
    if dest is None:
        err.append("route: no destination given\n")
        return 64
    v6 = "-6" in flags
    try:
        key = ("default6" if v6 else "default4") if dest == "default" else str(ipaddress.ip_network(dest, strict=False))
        if key != dest and dest != "default" and (":" in key) != v6:
            raise ValueError
        if gateway and not iface:
            gw = ipaddress.ip_address(gateway)
            if (gw.version == 6) != v6:
                raise ValueError
    except ValueError:
        err.append(f"route: bad address: {dest if not gateway else gateway}\n")
        return 64
    head = f"{verb} {kind} {dest}" + (f": gateway {gateway}" if gateway else "") + f" fib {fib}"
    if verb == "get":
        if key not in table:
            err.append("route: route has not been found\n")
            return 1
        r = table[key]
        out.append(f"   route to: {dest}\ndestination: {dest}\n        fib: {fib}\n"
                   + (f"  interface: {r['gateway']}\n" if r["iface"] else f"    gateway: {r['gateway']}\n"))
        return 0
    if verb == "delete":
        if key not in table:
            err.append("route: route has not been found\n")
            out.append(f"{head}: not in table\n")
            return 1
        del table[key]
    else:
        if verb == "add" and key in table:
            err.append("route: message indicates error: File exists\n")
            out.append(f"{head}: route already in table\n")
            return 1
        if verb == "change" and key not in table:
            err.append("route: route has not been found\n")
            out.append(f"{head}: not in table\n")
            return 1
        if not iface:  # net.add_addr_allfibs=0: the gateway must be on a connected route of this FIB
            gw = ipaddress.ip_address(gateway)
            if not _reachable(table, gw):
                err.append("route: message indicates error: Network is unreachable\n")
                out.append(f"{head}: Network is unreachable\n")
                return 1
        table[key] = {"gateway": gateway, "iface": iface}
    if not quiet:
        out.append(head + "\n")
    return 0


def _reachable(table: dict, gw) -> bool:
    for key, r in table.items():
        if r["iface"] and not key.startswith("default"):
            net = ipaddress.ip_network(key)
            if net.version == gw.version and gw in net:
                return True
    return False
