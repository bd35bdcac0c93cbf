"""The simulated FreeBSD host: jls, jail, pfctl, sysctl and route as models.

State lives in ``STATE_DIR/simhost/`` (state.dat, and a file per jail and per
anchor), updated under an flock so parallel jailhooks processes see one
consistent host, as on FreeBSD.  The files are marshal data (only the
simulator reads them).  Each
command checks its arguments the way the real tool does and prints what
FreeBSD 15.1 prints (tests compare against recorded real output).  What is
not modelled fails loudly (exit 70, "not modelled"), never silently.

Tests and demos create jails with the simulated ``jail -c`` and may inject
faults: ``faults`` entries make a matching command fail, print garbage, or
time out.
"""
from __future__ import annotations

import fcntl
import marshal
import os
import time
from contextlib import contextmanager
from typing import Any, Iterator

from ..pf.syntax import PfSyntaxError, parse
from .runner import CommandTimeout, Result

DEFAULT_PARENT = "jailhooks"
MAIN_RULESET = f"""\
set skip on lo0
nat-anchor "{DEFAULT_PARENT}/*"
rdr-anchor "{DEFAULT_PARENT}/*"
anchor "{DEFAULT_PARENT}/*"
pass out quick all keep state
"""


def _fresh_state() -> dict[str, Any]:
    rs = parse(MAIN_RULESET, in_anchor=False)
    return {
        "version": 1,
        "booted": time.time(),
        "next_jid": 1,
        "pf": {"loaded": True, "enabled": True, "since": time.time(),
               "main": {"filter": rs.lines("filter"), "nat": rs.lines("nat"), "refs": _refs(rs)},
               },
        "states": [],
        "sysctl": {"net.fibs": "1", "net.add_addr_allfibs": "0", "security.jail.jailed": "0",
                   "kern.features.inet6": "1", "kern.osrelease": "15.1-RELEASE-p1"},
        "routes": {"0": {}},
        "faults": [],
    }


def _refs(rs) -> list[str]:
    return sorted({r.anchor for r in rs.rules if r.kind.endswith("anchor")})


class SimulatedRunner:
    name = "simulated"

    def __init__(self, state_dir: str):
        self.dir = os.path.join(state_dir, "simhost")
        self.path = os.path.join(self.dir, "state.dat")
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
                before = self._bytes()
                st = marshal.loads(before) if before else _fresh_state()
                st["pf"]["anchors"] = _Store(os.path.join(self.dir, "anchors"))
                st["jails"] = _Store(os.path.join(self.dir, "jails"))
                yield st
                st["pf"].pop("anchors")
                st.pop("jails")
                if not before or st != marshal.loads(before):
                    _write(self.path, st)
            finally:
                fcntl.flock(lock, fcntl.LOCK_UN)

    def _bytes(self) -> bytes:
        try:
            with open(self.path, "rb") as fh:
                return fh.read()
        except FileNotFoundError:
            return b""

    def read(self) -> dict[str, Any]:
        """A plain copy of the whole state, anchors included (for tests)."""
        with self.state() as st:
            anchors, jails = dict(st["pf"]["anchors"].items()), dict(st["jails"].items())
            stores = st["pf"].pop("anchors"), st.pop("jails")
            copy = marshal.loads(marshal.dumps(st))
            st["pf"]["anchors"], st["jails"] = stores
        copy["pf"]["anchors"], copy["jails"] = anchors, jails
        copy["log"] = self.commands()
        return copy

    # -- the command log: every command run, [tool, arg, ...], oldest first --------
    # Appended, not kept in state.dat, so that a command that only reads
    # (jls, pfctl -s) does not rewrite the host's state.
    LOG_MAX = 1 << 20  # bytes; then the oldest half is dropped

    def _log(self, argv: list[str]) -> None:
        with open(self.log_path, "ab") as fh:
            marshal.dump(argv, fh)
            full = fh.tell() > self.LOG_MAX
        if full:
            kept = self.commands()
            _write_records(self.log_path, kept[len(kept) // 2:])

    def commands(self) -> list[list[str]]:
        records = []
        try:
            with open(self.log_path, "rb") as fh:
                while True:
                    try:
                        records.append(marshal.load(fh))
                    except (EOFError, ValueError):  # the end, or a record cut short by kill -9
                        return records
        except FileNotFoundError:
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

    def add_state(self, src: str, dst: str, label: str = "") -> None:
        with self.state() as st:
            st["states"].append({"src": src, "dst": dst, "label": label})

    # -- dispatch -------------------------------------------------------------------
    def run(self, argv: list[str], input: str | None, timeout: float, mutating: bool) -> Result:
        if not argv or not os.path.isabs(argv[0]):
            return Result(tuple(argv), 127, "", f"simulated host: {argv[0] if argv else '?'}: "
                          "commands must be given by absolute path\n")
        tool = os.path.basename(argv[0])
        handler = getattr(self, f"_cmd_{tool}", None)
        if handler is None:
            return Result(tuple(argv), 127, "", f"{argv[0]}: not found (not modelled by the simulated host)\n")
        with self.state() as st:
            self._log([tool, *argv[1:]])
            for fault in st["faults"]:
                if [tool, *argv[1:]][: len(fault["argv"])] == fault["argv"] and fault["times"] != 0:
                    fault["times"] -= 1 if fault["times"] > 0 else 0
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

    # -- jls(8) ---------------------------------------------------------------------------
    JLS_PARAMS = {"jid", "name", "path", "host.hostname", "ip4.addr", "ip6.addr", "ip4.saddrsel",
                  "ip6.saddrsel", "persist", "dying", "vnet"}

    def _cmd_jls(self, st, args, input, out, err) -> int:
        json_mode = False
        if args[:1] == ["--libxo"] and len(args) > 1:
            json_mode, args = args[1].split(",")[0] == "json", args[2:]
        elif args and args[0].startswith("--libxo="):
            json_mode, args = args[0][8:].split(",")[0] == "json", args[1:]
        try:
            opts, params = getopt(args, "cdhj:Nnqsv")
        except GetoptError:
            err.append("usage: jls [-dhNnqv] [-j jail] [param ...]\n")
            return 1
        flags = {o for o, _ in opts}
        if flags & {"-h", "-s", "-d"} or ("-n" in flags and not params):
            err.append("jls: this option is not modelled by the simulated host\n")
            return 70
        for p in params:
            if p not in self.JLS_PARAMS:
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
            out.append(", ".join(self._jls_json(j, params, verbose, "-n" in flags) for j in jails))
            out.append("]}}\n")
        else:
            if not params:
                out.append(self._jls_header(verbose, "-N" in flags))
            for j in jails:
                out.append(self._jls_text(j, params, verbose, "-N" in flags, "-n" in flags, "-q" in flags))
        if selector is not None and not jails:
            err.append(f'jls: jail "{selector}" not found\n')
            return 1
        return 0

    @staticmethod
    def _value(j: dict, p: str) -> Any:
        return {"jid": j["jid"], "name": j["name"], "path": j["path"], "host.hostname": j["hostname"],
                "ip4.addr": j["ip4"], "ip6.addr": j["ip6"], "ip4.saddrsel": j["ip4.saddrsel"],
                "ip6.saddrsel": j["ip6.saddrsel"], "persist": j["persist"], "dying": False,
                "vnet": j.get("vnet", "inherit")}[p]

    def _jls_json(self, j: dict, params: list[str], verbose: bool, n: bool) -> str:
        import json  # only when a jail is listed: most hook runs list none

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
            v = self._value(j, p)
            if isinstance(v, list):
                parts.append(f' {json.dumps(p)}: [{",".join(json.dumps(a) for a in v)}]')
            elif isinstance(v, bool):
                parts.append(f'{json.dumps(p)}:{"true" if v else "false"}' if n
                             else f'{json.dumps(p)}:"{"true" if v else "false"}"')
            else:
                parts.append(f"{json.dumps(p)}:{json.dumps(str(v))}")
        return "{" + ",".join(parts) + "}"

    @staticmethod
    def _jls_header(verbose: bool, names: bool) -> str:
        if verbose:
            return ("   JID  Hostname                      Path\n        Name                          State\n"
                    "        CPUSetID\n        IP Address(es)\n")
        first = f" {'JID':<15} " if names else "   JID  "  # -N: the name, "%-15s", in the jid's place
        return f"{first}IP Address      Hostname                      Path\n"

    def _jls_text(self, j: dict, params: list[str], verbose: bool, names: bool, n: bool, q: bool) -> str:
        if params:
            vals = []
            for p in params:
                v = self._value(j, p)
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

    # -- jail(8) --------------------------------------------------------------------------
    def _cmd_jail(self, st, args, input, out, err) -> int:
        try:
            opts, rest = getopt(args, "cdmrRqf:")
        except GetoptError:
            err.append("usage: jail [-dhilqv] [-J jid_file] [-u username] [-U username]\n"
                       "            -[cmr] param=value ... [command=command ...]\n")
            return 1
        flags = {o for o, _ in opts}
        quiet = "-q" in flags
        if "-f" in flags:
            err.append("jail: reading jail.conf is not modelled by the simulated host\n")
            return 70
        if flags & {"-r", "-R"}:
            if len(rest) != 1:
                err.append("jail: -r takes one jail name or jid here\n")
                return 1
            j = self._find(st, rest[0])
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
            if params.get("ip4.addr") or params.get("ip6.addr"):
                import ipaddress  # only when addresses are given (not for poststart's jail -m)
            ip4 = [str(ipaddress.IPv4Address(a)) for a in params["ip4.addr"].split(",")] if params.get("ip4.addr") else None
            ip6 = [str(ipaddress.IPv6Address(a)) for a in params["ip6.addr"].split(",")] if params.get("ip6.addr") else None
        except ValueError as exc:
            err.append(f"jail: {exc}\n")
            return 1
        if "-c" in flags:
            name = params.get("name")
            if not name or "." in name:
                err.append("jail: a name (without '.') is required here\n")
                return 1
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
            j = self._find(st, ident) if ident else None
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

    @staticmethod
    def _find(st, ident: str) -> dict | None:
        if ident.isdigit():
            return next((j for j in st["jails"].values() if j["jid"] == int(ident)), None)
        return st["jails"].get(ident)

    # -- sysctl(8) -------------------------------------------------------------------------
    def _cmd_sysctl(self, st, args, input, out, err) -> int:
        try:
            opts, names = getopt(args, "niq")
        except GetoptError:
            err.append("usage: sysctl [-bdehiNnoqTtWx] [ -B <bufsize> ] [-f filename] name[=value] ...\n")
            return 1
        flags = {o for o, _ in opts}
        rc = 0
        for item in names:
            name, eq, value = item.partition("=")
            if name not in st["sysctl"]:
                if "-i" not in flags:
                    err.append(f"sysctl: unknown oid '{name}'\n")
                    rc = 1
                continue
            old = st["sysctl"][name]
            if eq:
                if name != "net.fibs":
                    err.append(f"sysctl: oid '{name}' is read only\n")
                    rc = 1
                    continue
                if not value.isdigit() or not 1 <= int(value) <= 65535:
                    err.append(f"sysctl: invalid integer '{value}'\n")
                    rc = 1
                    continue
                if int(value) < int(old):  # net.fibs only grows at run time
                    err.append(f"sysctl: {name}={value}: Capabilities insufficient\n")
                    rc = 1
                    continue
                st["sysctl"][name] = value
                for fib in range(int(old), int(value)):
                    st["routes"].setdefault(str(fib), {})
                out.append(f"{value}\n" if "-n" in flags else f"{name}: {old} -> {value}\n")
            else:
                out.append(f"{old}\n" if "-n" in flags else f"{name}: {old}\n")
        return rc

    # -- route(8) --------------------------------------------------------------------------
    # Messages follow sbin/route/route.c: per-route results on stdout
    # ("add net D: gateway G fib N[: error]"), netlink errors on stderr.
    def _cmd_route(self, st, args, input, out, err) -> int:
        import ipaddress  # only in the commands that parse addresses

        try:
            opts, rest = getopt(args, "46dnqtv")
        except GetoptError:
            err.append("usage: route [-j jail] [-46dnqtv] command [[modifiers] args]\n")
            return 64
        flags = {o for o, _ in opts}
        quiet = "-q" in flags
        if not rest or rest[0] not in ("add", "change", "delete", "get", "flush"):
            err.append("usage: route [-j jail] [-46dnqtv] command [[modifiers] args]\n")
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

    # -- pfctl(8) --------------------------------------------------------------------------
    SHOW = ["ether", "nat", "queue", "rules", "Anchors", "Sources", "states", "info", "Interfaces",
            "labels", "timeouts", "memory", "Tables", "osfp", "Running", "all", "creatorids"]
    CLEAR = ["ethernet", "nat", "queue", "rules", "Sources", "states", "info", "Tables", "osfp", "all", "Reset"]
    PFCTL_USAGE = ("usage: pfctl [-AdeghMmNnOPqRSrvz] [-a anchor] [-D macro=value] [-F modifier]\n"
                   "\t[-f file] [-i interface] [-K host | network]\n"
                   "\t[-k host | network | gateway | label | id] [-o level] [-p device]\n"
                   "\t[-s modifier] [-t table -T command [address ...]] [-x level]\n")

    def _cmd_pfctl(self, st, args, input, out, err) -> int:
        def usage() -> int:
            err.append(self.PFCTL_USAGE)
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

        try:
            opts, rest = getopt(args, "a:deqf:F:k:nvs:")
        except GetoptError as exc:
            err.append(f"pfctl: {exc}\n")
            return usage()
        anchor = show = clear = rules_file = None
        kills: list[str] = []
        quiet = noaction = verbose = enable = False
        writes = False
        for o, v in opts:
            if o == "-a":
                anchor = v
            elif o == "-s":
                show = lookup(v, self.SHOW, "show")
            elif o == "-F":
                clear, writes = lookup(v, self.CLEAR, "flush"), True
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
                err.append("pfctl: -d is not modelled by the simulated host\n")
                return 70
        if rest:
            err.append(f"pfctl: unknown command line argument: {rest[0]} ...\n")
            return usage()
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
                err.append("pfctl: wildcard anchors are not modelled by the simulated host\n")
                return 70
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
        if show is not None:
            rc = self._pf_show(st, show, anchor, out, err)
        if clear is not None:
            self._pf_clear(st, clear, anchor, quiet, err)
        if kills:
            self._pf_kill(st, kills, quiet, err)
        if rules_file is not None:
            rc |= self._pf_load(st, rules_file, input, anchor, noaction, verbose, quiet, out, err)
        if enable:
            if pf["enabled"]:
                err.append("pfctl: pf already enabled\n")
                rc = 1
            else:
                pf["enabled"], pf["since"] = True, time.time()
                if not quiet:
                    err.append("pf enabled\n")
        return rc

    def _anchor_tree(self, st) -> set[str]:
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

    def _anchor_exists(self, st, anchor: str) -> bool:
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

    def _pf_show(self, st, show: str, anchor: str, out, err) -> int:
        pf = st["pf"]
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
            tree = self._anchor_tree(st)
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
            elif not self._anchor_exists(st, anchor):
                err.append("pfctl: Anchor does not exist.\n" if show == "rules"
                           else "pfctl: DIOCGETRULES: Invalid argument\n")
                return 0
            else:
                lines = pf["anchors"].get(anchor, {}).get("filter" if show == "rules" else "nat", [])
            out.extend(f"{line}\n" for line in lines)
            return 0
        if show == "Tables":
            # pfctl_show_tables(): the kernel's pfr_get_tables() answers ENOENT for a
            # missing anchor, radix_perror() prints pfr_strerror()'s text, exit 1.
            if anchor and not self._anchor_exists(st, anchor):
                err.append("pfctl: Anchor or Ruleset does not exist.\n")
                return 1
            tables = pf["anchors"].get(anchor, {}).get("tables", {}) if anchor else {}
            out.extend(f"{t}\n" for t in sorted(tables))
            return 0
        err.append(f"pfctl: -s {show} is not modelled by the simulated host\n")
        return 70

    def _pf_clear(self, st, clear: str, anchor: str, quiet: bool, err) -> None:
        anchors = st["pf"]["anchors"]
        if not anchor:
            err.append("pfctl: flushing the main ruleset is not modelled by the simulated host\n")
            raise _Exit(70)
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
            err.append(f"pfctl: -F {clear} is not modelled by the simulated host\n")
            raise _Exit(70)
        if entry["filter"] or entry["nat"] or entry["tables"]:
            anchors[anchor] = entry
        else:  # the kernel drops an anchor left with nothing in it
            anchors.pop(anchor, None)
        if not quiet:
            err.extend(msgs)

    def _pf_kill(self, st, kills: list[str], quiet: bool, err) -> None:
        import ipaddress  # only in the commands that parse addresses

        if kills[0] == "label":
            if len(kills) < 2 or not kills[1]:
                err.append("pfctl: no label specified\n" + self.PFCTL_USAGE)
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

    def _pf_load(self, st, rules_file: str, input: str | None, anchor: str, noaction: bool, verbose: bool,
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
        if anchor:
            entry = {"filter": rs.lines("filter"), "nat": rs.lines("nat"), "tables": rs.tables}
            if entry["filter"] or entry["nat"] or entry["tables"]:
                st["pf"]["anchors"][anchor] = entry
            else:
                st["pf"]["anchors"].pop(anchor, None)
        else:
            st["pf"]["main"] = {"filter": rs.lines("filter"), "nat": rs.lines("nat"), "refs": _refs(rs)}
        return 0


def _write(path: str, value: Any) -> None:
    """Replace PATH with VALUE as marshal data (lists, dicts, strings, numbers)."""
    _write_records(path, [value])


def _write_records(path: str, values: list) -> None:
    tmp = f"{path}.{os.getpid()}.tmp"
    with open(tmp, "wb") as fh:
        for value in values:
            marshal.dump(value, fh)
    os.replace(tmp, path)


class _Store:
    """Jails, or pf anchors with content: one file each, read and written
    on use, so a command costs the same on a host with 10 jails or 1,000."""

    def __init__(self, directory: str):
        self.dir = directory

    def _path(self, name: str) -> str:
        # names are jail names or anchor paths: escape '%' and '/'
        return os.path.join(self.dir, name.replace("%", "%25").replace("/", "%2F") + ".dat")

    def __iter__(self):
        try:
            names = os.listdir(self.dir)
        except FileNotFoundError:
            return iter(())
        return iter(sorted(n[:-4].replace("%2F", "/").replace("%25", "%") for n in names if n.endswith(".dat")))

    def get(self, name: str, default: Any = None) -> Any:
        try:
            with open(self._path(name), "rb") as fh:
                return marshal.load(fh)
        except FileNotFoundError:
            return default

    def items(self):
        return [(name, self.get(name)) for name in self]

    def values(self):
        return [entry for _, entry in self.items()]

    def __contains__(self, name: str) -> bool:
        return os.path.exists(self._path(name))

    def __getitem__(self, name: str) -> dict:
        entry = self.get(name)
        if entry is None:
            raise KeyError(name)
        return entry

    def __delitem__(self, name: str) -> None:
        if self.pop(name) is None:
            raise KeyError(name)

    def __setitem__(self, name: str, entry: dict) -> None:
        os.makedirs(self.dir, mode=0o700, exist_ok=True)
        _write(self._path(name), entry)

    def pop(self, name: str, default: Any = None) -> Any:
        entry = self.get(name, default)
        try:
            os.unlink(self._path(name))
        except FileNotFoundError:
            pass
        return entry


class GetoptError(Exception):
    pass


def getopt(args: list[str], shortopts: str) -> tuple[list[tuple[str, str]], list[str]]:
    """POSIX getopt(3) as FreeBSD's tools use it: short options, clustered or
    not, option arguments attached or separate, "--" ends them, and the first
    operand ends them too.  (The getopt module pulls in gettext: slow.)"""
    opts: list[tuple[str, str]] = []
    i = 0
    while i < len(args) and args[i].startswith("-") and args[i] != "-":
        if args[i] == "--":
            return opts, args[i + 1:]
        arg, j = args[i], 1
        while j < len(arg):
            ch = arg[j]
            k = shortopts.find(ch)
            if ch == ":" or k < 0:
                raise GetoptError(f"illegal option -- {ch}")
            if shortopts[k + 1:k + 2] == ":":
                value = arg[j + 1:]
                if not value:
                    i += 1
                    if i >= len(args):
                        raise GetoptError(f"option requires an argument -- {ch}")
                    value = args[i]
                opts.append((f"-{ch}", value))
                break
            opts.append((f"-{ch}", ""))
            j += 1
        i += 1
    return opts, args[i:]


def _reachable(table: dict, gw) -> bool:
    import ipaddress  # only in the commands that parse addresses

    for key, r in table.items():
        if r["iface"] and not key.startswith("default"):
            net = ipaddress.ip_network(key)
            if net.version == gw.version and gw in net:
                return True
    return False


class _Exit(Exception):
    def __init__(self, code: int):
        self.code = code
