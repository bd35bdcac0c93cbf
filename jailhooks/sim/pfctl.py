"""The simulated pfctl(8): anchors, rules, tables and states, parsed and printed by the pf grammar model."""
from __future__ import annotations

import ipaddress
import time

from ..pf.listing import listing
from ..pf.syntax import PfSyntaxError, parse
from .getopt import _Exit, not_modelled, options
from .store import main_entry

SHOW = ["ether", "nat", "queue", "rules", "Anchors", "Sources", "states", "info", "Interfaces",
        "labels", "timeouts", "memory", "Tables", "osfp", "Running", "all", "creatorids"]
CLEAR = ["ethernet", "nat", "queue", "rules", "Sources", "states", "info", "Tables", "osfp", "all", "Reset"]
PFCTL_USAGE = ("usage: pfctl [-AdeghMmNnOPqRSrvz] [-a anchor] [-D macro=value] [-F modifier]\n"
               "\t[-f file] [-i interface] [-K host | network]\n"
               "\t[-k host | network | gateway | label | id] [-o level] [-p device]\n"
               "\t[-s modifier] [-t table -T command [address ...]] [-x level]\n")

def run(st, args, input, out, err) -> int:
    def usage() -> int:
        err.append(PFCTL_USAGE)
        return 1

    def lookup(value: str, options: list[str], what: str) -> str:
        found = [o for o in options if value and o.startswith(value)]
        if len(found) > 1:
            err.append(f"pfctl: {value} is ambigious\n")
            raise _Exit(1)
        if not found:
            err.append(f"pfctl: Unknown {what} modifier '{value}'\n")
            raise _Exit(usage())
        return found[0]

    if not args:
        return usage()
    # sbin/pfctl/pfctl.c: -h is usage()
    _, opts, rest = options(args, "pfctl", "a:AdD:eqf:F:ghi:k:K:mMnNOo:Pp:rRs:St:T:vx:z", "adefFhknqstTv",
                            PFCTL_USAGE, 1, err)
    anchor = show = clear = rules_file = table = table_command = None
    kills: list[str] = []
    quiet = noaction = verbose = enable = disable = False
    writes = False
    for o, v in opts:
        if o == "-a":
            anchor = v
        elif o == "-s":
            show = lookup(v, SHOW, "show")
        elif o == "-F":
            clear, writes = lookup(v, CLEAR, "flush"), True
        elif o == "-f":
            rules_file, writes = v, True
        elif o == "-k":
            if len(kills) >= 2:
                err.append("pfctl: can only specify -k twice\n")
                return usage()
            kills.append(v)
            writes = True
        elif o == "-q":
            quiet = True
        elif o == "-n":
            noaction = True
        elif o == "-v":
            verbose = True
        elif o == "-e":
            enable = writes = True
        elif o == "-d":
            disable = writes = True
        elif o == "-t":
            table = v
        elif o == "-T":
            table_command = v
        elif o == "-h":
            return usage()
    if table_command is not None or table is not None:  # -T takes addresses as operands
        return _pf_table(st, anchor, table, table_command, out, err)
    if rest:
        err.append(f"pfctl: unknown command line argument: {rest[0]} ...\n")
        return usage()
    recurse = False
    if anchor is not None:
        if anchor == "":
            err.append("pfctl: anchor name must not be empty\n")
            return 1
        if not writes and show is None:
            err.append("pfctl: anchors apply to -f, -F, -s, and -T only\n")
            return usage()
        if writes and (anchor.startswith("_") or "/_" in anchor):
            err.append("pfctl: anchor names beginning with '_' cannot be modified from the command line\n")
            return 1
        if anchor.endswith("*"):
            # pfctl.c: a trailing "*" (or "/*") is cut off and sets PF_OPT_RECURSE;
            # modelled: -a '*' -s rules|nat, the whole tree
            if anchor != "*" or writes or show not in ("rules", "nat"):
                return not_modelled("pfctl", "a wildcard anchor other than -a '*' -s rules|nat", err)
            recurse, anchor = True, ""
    anchor = (anchor or "").strip("/")
    pf = st["pf"]
    if not pf["loaded"]:
        err.append("pfctl: Failed to open netlink: No such file or directory\n" if noaction
                   else "pfctl: /dev/pf: No such file or directory\n")
        return 1
    if noaction:
        show = clear = None
        kills = []
    rc = 0
    if disable:  # pfctl_disable(), before any -s (pfctl.c main)
        if not pf["enabled"]:
            err.append("pfctl: pf not enabled\n")
            return 1
        pf["enabled"] = False
        if not quiet:
            err.append("pf disabled\n")
    if show is not None:
        rc = _pf_show(st, show, anchor, out, err, recurse, verbose)
    if clear is not None:
        _pf_clear(st, clear, anchor, quiet, err)
    if kills:
        _pf_kill(st, kills, quiet, err)
    if rules_file is not None:
        rc |= _pf_load(st, rules_file, input, anchor, noaction, verbose, quiet, out, err)
    if enable:
        if pf["enabled"]:
            err.append("pfctl: pf already enabled\n")
            rc = 1
        else:
            pf["enabled"], pf["since"] = True, time.time()
            if not quiet:
                err.append("pf enabled\n")
    return rc

# The simulated host's interfaces and groups as pf lists them (em0 is its uplink).
HOST_INTERFACES = {"all", "em0", "lo", "lo0", "pflog", "pflog0"}


def _anchor_tree(st) -> set[str]:
    """Anchors that exist: those with rules or tables, their ancestors,
    and the parents of wildcard references in the main ruleset."""
    names: set[str] = set()
    for name in st["pf"]["anchors"]:
        parts = name.split("/")
        names.update("/".join(parts[: i + 1]) for i in range(len(parts)))
    for ref in st["pf"]["main"]["refs"]:
        base = ref[:-2] if ref.endswith("/*") else ref
        if base:
            parts = base.split("/")
            names.update("/".join(parts[: i + 1]) for i in range(len(parts)))
    return names

def _anchor_exists(st, anchor: str) -> bool:
    """ANCHOR in _anchor_tree(), without listing every anchor when it has
    rules or tables of its own (a host with 1,000 jails asks 1,000 times)."""
    anchors = st["pf"]["anchors"]
    if anchor in anchors:
        return True
    below = anchor + "/"
    for ref in st["pf"]["main"]["refs"]:
        base = ref[:-2] if ref.endswith("/*") else ref
        if base == anchor or base.startswith(below):
            return True
    return any(name.startswith(below) for name in anchors)

def _pf_show(st, show: str, anchor: str, out, err, recurse: bool = False, verbose: bool = False) -> int:
    pf = st["pf"]
    if recurse:  # pfctl_show_rules()/pfctl_show_nat() with PF_OPT_RECURSE
        kind = "filter" if show == "rules" else "nat"
        anchors = {name: entry.get(kind, []) for name, entry in pf["anchors"].items()}
        tree = _anchor_tree(st)

        def children(base: str) -> list[str]:
            prefix = base + "/" if base else ""
            return sorted({n[len(prefix):].split("/")[0] for n in tree if n.startswith(prefix) and n != base},
                          key=str.encode)

        out.append(listing(pf["main"][kind], anchors, show, children))
        return 0
    if show == "Interfaces":
        # pfctl_show_ifaces(): every interface and group pf knows, " (skip)" with -v
        skip = set(pf["main"].get("skip", []))
        for name in sorted(HOST_INTERFACES | skip, key=str.encode):
            out.append(f"{name}{' (skip)' if verbose and name in skip else ''}\n")
        return 0
    if show == "Running":
        out.append("Enabled\n" if pf["enabled"] else "Disabled\n")
        return 0 if pf["enabled"] else 1
    if show == "info":
        secs = int(time.time() - pf["since"])
        line = (f"Status: {'Enabled' if pf['enabled'] else 'Disabled'} for {secs // 86400} days "
                f"{secs // 3600 % 24:02d}:{secs // 60 % 60:02d}:{secs % 60:02d}")
        out.append(f"{line:<44}{'Debug: Urgent':>15}\n\n")
        out.append(f"{'State Table':<27} {'Total':>14} {'Rate':>16}\n")
        out.append(f"  {'current entries':<25} {len(st['states']):>14} {'':>14}\n")
        return 0
    if show == "Anchors":
        tree = _anchor_tree(st)
        if anchor and anchor not in tree:
            err.append("pfctl: Anchor does not exist.\n")
            return 1
        prefix = anchor + "/" if anchor else ""
        for name in sorted(n for n in tree if n.startswith(prefix)):
            out.append(f"  {name}\n")  # sorted == depth-first in strcmp order
        return 0
    if show in ("rules", "nat"):
        if not anchor:
            lines = pf["main"]["filter" if show == "rules" else "nat"]
        elif not _anchor_exists(st, anchor):
            err.append("pfctl: Anchor does not exist.\n" if show == "rules"
                       else "pfctl: DIOCGETRULES: Invalid argument\n")
            return 0
        else:
            lines = pf["anchors"].get(anchor, {}).get("filter" if show == "rules" else "nat", [])
        entry = pf["anchors"].get(anchor, {}) if anchor else {}
        for i, line in enumerate(lines):
            out.append(f"{line}\n")
            if verbose:  # pfctl.c pfctl_print_rule_counters(), PF_OPT_VERBOSE
                evaluations, packets, size, states = entry.get("counters", {}).get(str(i), [0, 0, 0, 0])
                out.append(f"  [ Evaluations: {evaluations:<8}  Packets: {packets:<8}  Bytes: {size:<10}  "
                           f"States: {states:<6}]\n")
                out.append(f"  [ Source Nodes: {0:<6} Limit: {0:<6} NAT/RDR: {0:<6} Route: {0:<6} ]\n")
                # the loading pfctl's pid is not kept by the simulation
                out.append(f"  [ Inserted: uid 0 pid 0 State Creations: {states:<6}]\n")
        return 0
    if show == "Tables":
        # pfctl_show_tables(): the kernel's pfr_get_tables() answers ENOENT for a
        # missing anchor, radix_perror() prints pfr_strerror()'s text, exit 1.
        if anchor and not _anchor_exists(st, anchor):
            err.append("pfctl: Anchor or Ruleset does not exist.\n")
            return 1
        tables = pf["anchors"].get(anchor, {}).get("tables", {}) if anchor else {}
        out.extend(f"{t}\n" for t in sorted(tables))
        return 0
    return not_modelled("pfctl", f"-s {show}", err)

def _pf_clear(st, clear: str, anchor: str, quiet: bool, err) -> None:
    anchors = st["pf"]["anchors"]
    if not anchor:
        raise _Exit(not_modelled("pfctl", "flushing the main ruleset", err))
    entry = anchors.get(anchor, {"filter": [], "nat": [], "tables": {}})
    msgs = []
    if clear in ("rules", "all"):
        entry["filter"] = []
    if clear in ("nat", "all"):
        entry["nat"] = []
    if clear in ("Tables", "all"):
        msgs_tables = f"{len(entry['tables'])} tables deleted.\n"
        entry["tables"] = {}
    if clear == "all":
        msgs = ["Ethernet rules cleared\n", "rules cleared\n", "nat cleared\n", msgs_tables, "rules cleared\n"]
    elif clear == "rules":
        msgs = ["rules cleared\n"]
    elif clear == "nat":
        msgs = ["nat cleared\n"]
    elif clear == "Tables":
        msgs = [msgs_tables]
    else:
        raise _Exit(not_modelled("pfctl", f"-F {clear}", err))
    if entry["filter"] or entry["nat"] or entry["tables"]:
        anchors[anchor] = entry
    else:  # the kernel drops an anchor left with nothing in it
        anchors.pop(anchor, None)
    if not quiet:
        err.extend(msgs)

def _pf_kill(st, kills: list[str], quiet: bool, err) -> None:
    if kills[0] == "label":
        if len(kills) < 2 or not kills[1]:
            err.append("pfctl: no label specified\n" + PFCTL_USAGE)
            raise _Exit(1)
        keep = [s for s in st["states"] if s["label"] != kills[1]]
        killed = len(st["states"]) - len(keep)
        st["states"] = keep
        if not quiet:
            err.append(f"killed {killed} states\n")
        return
    nets = []
    for k in kills:
        try:
            nets.append(ipaddress.ip_network(k, strict=False))
        except ValueError:
            err.append("pfctl: getaddrinfo: Name does not resolve\n")
            raise _Exit(1)

    def hit(s) -> bool:
        src = ipaddress.ip_address(s["src"])
        if src.version != nets[0].version or src not in nets[0]:
            return False
        if len(nets) > 1:
            dst = ipaddress.ip_address(s["dst"])
            return dst.version == nets[1].version and dst in nets[1]
        return True

    keep = [s for s in st["states"] if not hit(s)]
    killed = len(st["states"]) - len(keep)
    st["states"] = keep
    if not quiet:
        err.append(f"killed {killed} states from 1 sources and {len(nets) - 1} destinations\n")

def _pf_load(st, rules_file: str, input: str | None, anchor: str, noaction: bool, verbose: bool,
             quiet: bool, out, err) -> int:
    if rules_file == "-":
        text, fname = input or "", "stdin"
    else:
        try:
            with open(rules_file, encoding="utf-8") as fh:
                text, fname = fh.read(), rules_file
        except OSError as exc:
            err.append(f"pfctl: cannot open the main config file!: {exc.strerror}\n")
            return 1
    try:
        rs = parse(text, in_anchor=bool(anchor))
    except PfSyntaxError as exc:
        err.append(f"{fname}:{exc.line}: {exc}\n")
        if not noaction:
            err.append("pfctl: Syntax error in config file: pf rules not loaded\n")
        return 1
    if noaction:
        if verbose:
            out.append(rs.nv_output())
        return 0
    if anchor:  # new rules: their counters start at zero (a "counters" key only once a packet passed them)
        entry = {"filter": rs.lines("filter"), "nat": rs.lines("nat"), "tables": rs.tables}
        if entry["filter"] or entry["nat"] or entry["tables"]:
            st["pf"]["anchors"][anchor] = entry
        else:
            st["pf"]["anchors"].pop(anchor, None)
    else:
        st["pf"]["main"] = main_entry(rs)
    return 0


def _pf_table(st, anchor, table, command, out, err) -> int:
    """pfctl_table(): only ``-t NAME -T show`` is modelled (print_addrx: "%c %c%s")."""
    if command is not None and command != "show":
        return not_modelled("pfctl", f"-T {command}", err)
    if command is None or table is None:
        err.append(PFCTL_USAGE)
        return 1
    pf = st["pf"]
    anchor = (anchor or "").strip("/")
    tables = pf["anchors"].get(anchor, {}).get("tables", {}) if anchor else pf["main"].get("tables", {})
    if table not in tables:
        err.append("pfctl: Table does not exist.\n")
        return 1
    out.extend(f"   {entry}\n" for entry in tables[table])
    return 0
