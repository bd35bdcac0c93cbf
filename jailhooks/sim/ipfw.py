"""The simulated ipfw(8): the rule list, number tables and the commands
jailhooks sends, with 15.1's checks and output (sbin/ipfw/main.c, ipfw2.c,
tables.c; compared with tests/fixtures/freebsd-15.1/ipfw, which 15.1's own
ipfw printed against its own kernel code).

Modelled: ``add`` (the rule grammar jailhooks writes and the fixtures show),
``delete N|N-M``, ``list``/``show`` (``-S``), ``-f flush``, ``table NAME
create type number|addr``, ``add``, ``delete``, ``destroy``, ``list``; the
in-kernel nat's ``nat N config ip ADDR [redirect_port PROTO LADDR:LPORT
PPORT]...``, ``nat [N] show config`` and ``nat N delete`` (nat.c); and
``ipfw [-q] /ABSOLUTE/FILE`` (main.c: the last argument an absolute path;
``/dev/stdin`` reads the command's input): one command per line, stopping at
the first that fails and keeping the lines before it, as ipfw_readfile()
does.  Anything else exits 70 saying it is not modelled.
"""
from __future__ import annotations

import ipaddress

from .getopt import GetoptError, _Exit, getopt, not_modelled
from .pflogd import UPLINK, UPLINK_ADDRESS

# main.c: getopt(ac, av, "abcdDefhinNp:qs:STtvx"); ipfw_readfile: "cfNnp:qS"
OPTSTRING, FILE_OPTSTRING = "abcdDefhinNp:qs:STtvx", "cfNnp:qS"
MODELLED_FLAGS = {"-q", "-f", "-S"}  # quiet, force, sets: the others exit 70
USAGE_TAIL = 'do "ipfw -h" or "man ipfw" for details'
DEFAULT_RULES = ["count ip from any to any not // orphaned dynamic states counter", "deny ip from any to any"]
# FreeBSD 15.1's etc/master.passwd: the host's accounts, which `uid NAME|N` takes (ipfw2.c TOK_UID: getpwnam,
# getpwuid); tests/fixtures/freebsd-15.1/etc/master.passwd
HOST_USERS = {"root": 0, "toor": 0, "daemon": 1, "operator": 2, "bin": 3, "tty": 4, "kmem": 5, "games": 7, "news": 8,
              "man": 9, "sshd": 22, "smmsp": 25, "mailnull": 26, "bind": 53, "unbound": 59, "proxy": 62,
              "_pflogd": 64, "_dhcp": 65, "uucp": 66, "pop": 68, "auditdistd": 78, "www": 80, "ntpd": 123,
              "_ypldap": 160, "hast": 845, "tests": 977, "nobody": 65534}
AUTOINC_STEP = 100  # net.inet.ip.fw.autoinc_step
ACTIONS = {"allow": "allow", "accept": "allow", "pass": "allow", "permit": "allow", "deny": "deny", "drop": "deny",
           "count": "count"}
PROTOS = {"ip": "ip", "all": "ip", "tcp": "tcp", "udp": "udp", "icmp": "icmp", "icmp6": "ipv6-icmp",
          "ipv6-icmp": "ipv6-icmp"}


class Refused(Exception):
    """What ipfw prints (after "ipfw: " or "Line N: ") and its exit status."""

    def __init__(self, message: str, code: int) -> None:
        super().__init__(message)
        self.message, self.code = message, code


def state(st) -> dict:
    ipfw = st.setdefault("ipfw", {"rules": [], "tables": {}})
    ipfw.setdefault("nat", {})  # instance number (a string) -> {"ip": ..., "redirects": [[proto, laddr, lport, pport]]}
    return ipfw


def run(st, args, input, out, err) -> int:
    if args and args[-1].startswith("/"):
        return _file(st, args, input, out, err)
    try:
        opts, rest = getopt(args, OPTSTRING)
    except GetoptError as exc:
        err.append(f"ipfw: {exc}\nipfw: usage: ipfw [options]\n{USAGE_TAIL}\n")
        return 64
    flags = _flags(opts, err)
    try:
        _command(st, rest, flags, out, err)
    except Refused as exc:
        err.append(f"ipfw: {exc.message}\n")
        return exc.code
    return 0


def _file(st, args, input, out, err) -> int:
    """main.c: an absolute path last is a file of commands (ipfw_readfile)."""
    path = args[-1]
    if path != "/dev/stdin":
        return not_modelled("ipfw", f"reading {path} (only /dev/stdin)", err)
    try:
        opts, rest = getopt(args[:-1], FILE_OPTSTRING)
    except GetoptError:
        err.append("ipfw: bad arguments, for usage summary ``ipfw''\n")
        return 64
    if rest:
        err.append(f"ipfw: extraneous filename arguments {path}\n")
        return 64
    flags = _flags(opts, err)
    for number, line in enumerate((input or "").splitlines(), 1):
        if len(line) >= 4095:  # fgets(buf, 4096): a longer line would be cut in two commands
            return not_modelled("ipfw", f"line {number} of {len(line)} characters (fgets reads 4095)", err)
        words = line.split()
        if not words or words[0].startswith("#"):
            continue
        try:
            _command(st, words, flags, out, err)
        except Refused as exc:
            err.append(f"Line {number}: {exc.message}\n")
            return exc.code
    return 0


def _flags(opts: list[tuple[str, str]], err) -> set[str]:
    """The options given, if the simulation models them all; else exit 70."""
    flags = {o for o, _ in opts}
    if flags - MODELLED_FLAGS:
        raise _Exit(not_modelled("ipfw", sorted(flags - MODELLED_FLAGS)[0], err))
    return flags


def _command(st, words: list[str], flags: set[str], out, err) -> None:
    if not words:
        raise Refused("bad arguments, for usage summary ``ipfw''", 64)
    verb, rest = words[0], words[1:]
    quiet = "-q" in flags
    if verb == "add":
        line = _add(st, rest)
        if not quiet:
            out.append(line + "\n")
    elif verb == "delete":
        _delete(st, rest, quiet)
    elif verb in ("list", "show"):
        if rest:
            raise Refused(f"{verb} with arguments is not modelled by the simulated host", 70)
        _list(st, out, counters=verb == "show", sets="-S" in flags)
    elif verb == "flush":
        if "-f" not in flags:
            raise Refused("flush without -f (it asks on the terminal) is not modelled by the simulated host", 70)
        state(st)["rules"] = []
    elif verb == "table":
        _table(st, rest, quiet, out, err)
    elif verb == "nat":
        _nat(st, rest, quiet, out, err)
    else:
        raise Refused(f"{verb} is not modelled by the simulated host", 70)


# -- rules -------------------------------------------------------------------------------------------

def _add(st, words: list[str]) -> str:
    ipfw = state(st)
    words = list(words)
    number = 0
    if words and words[0].isdigit():
        number = int(words.pop(0))
    if number >= 65535:  # the kernel's default rule: IP_FW_XADD refuses it (EINVAL)
        raise Refused("getsockopt(IP_FW_XADD): Invalid argument", 69)
    rule_set = 0
    if len(words) > 1 and words[0] == "set" and words[1].isdigit():
        rule_set = int(words[1])
        words = words[2:]
    body = _compile(st, words)
    if number == 0:  # ipfw2.c: the next multiple of autoinc_step after the last rule
        numbers = [r["number"] for r in ipfw["rules"]]
        number = (max(numbers) // AUTOINC_STEP + 1) * AUTOINC_STEP if numbers else AUTOINC_STEP
    ipfw["rules"].append({"number": number, "set": rule_set, "body": body})
    ipfw["rules"].sort(key=lambda r: r["number"])  # stable: equal numbers keep their order
    return f"{number:05d} {body}"


def _compile(st, words: list[str]) -> str:
    """The rule as 15.1 lists it, or Refused: ipfw2.c compile_rule() for the
    grammar jailhooks writes; anything else is not modelled."""
    ipfw, printed = state(st), []
    if not words:
        raise Refused("missing action", 64)
    action, words = words[0], words[1:]
    if action in ACTIONS:
        printed.append(ACTIONS[action])
    elif action == "check-state":
        printed.append("check-state :default")
        if words[:1] and words[0].startswith(":"):
            words = words[1:]
        if words:
            raise Refused("check-state with a body is not modelled by the simulated host", 70)
        return " ".join(printed)
    elif action == "nat" and words and words[0].isdigit():
        number = int(words[0])  # ipfw2.c arg_or_targ: 1..IPFW_ARG_MAX (65534)
        if not 1 <= number <= 65534:
            raise Refused(f"illegal argument {words[0]}({number}) for nat", 65)
        printed.append(f"nat {number}")
        words = words[1:]
    elif action in ("skipto", "setfib") and words and words[0].isdigit():
        if action == "setfib" and int(words[0]) >= int(st["sysctl"].get("net.fibs", "1")):
            raise Refused("fib too large.\n", 65)  # ipfw2.c errx(EX_DATAERR, "fib too large.\n")
        printed.append(f"{action} {int(words[0])}")
        words = words[1:]
    else:
        raise Refused(f"action {action} is not modelled by the simulated host", 70)
    if words[:1] == ["log"]:  # ipfw2.c compile_rule TOK_LOG: logdst before or after logamount
        printed.append("log")
        words = words[1:]
        amount, where = "", ""
        for _ in range(2):
            if words[:1] == ["logamount"] and len(words) > 1 and not amount:
                if not words[1].lstrip("-").isdigit() or int(words[1]) < 0:
                    raise Refused("logamount must be positive", 65)
                amount, words = words[1], words[2:]
            elif words[:1] == ["logdst"] and len(words) > 1 and not where:
                tokens = words[1].split(",")
                if not set(tokens) <= {"syslog", "ipfw0", "rtsock"}:
                    raise Refused("unsupported logdst token", 65)
                # print_logdst(): in the order syslog, ipfw0, rtsock
                where, words = ",".join(t for t in ("syslog", "ipfw0", "rtsock") if t in tokens), words[2:]
        if amount and int(amount) > 0:  # a logamount of 0 (net.inet.ip.fw.verbose_limit's default) is not shown
            printed.append(f"logamount {int(amount)}")
        if where:
            printed.append(f"logdst {where}")
    if not words or words[0] not in PROTOS:
        raise Refused(f"protocol {words[0] if words else '(none)'} is not modelled by the simulated host", 70)
    proto = PROTOS[words[0]]
    printed.append(proto)
    words = words[1:]
    for side in ("from", "to"):
        if words[:1] != [side]:
            raise Refused(f"missing ``{side}''", 64)
        if len(words) < 2:
            raise Refused(f"missing {'source' if side == 'from' else 'destination'} address", 64)
        printed += [side, _address(words[1])]
        words = words[2:]
        if words and (words[0][:1].isdigit()) and "." not in words[0] and ":" not in words[0]:
            if proto not in ("tcp", "udp"):
                raise Refused("only TCP, UDP and SCTP protocols are valid with port specifications", 64)
            printed.append(_ports(words[0]))
            words = words[1:]
    while words:
        opt, words = words[0], words[1:]
        if opt in ("in", "out"):
            printed.append(opt)
        elif opt in ("xmit", "recv", "via") and words:
            printed += [opt, words[0]]
            words = words[1:]
        elif opt == "jail" and words:
            printed += ["jail", str(_jail(st, words[0]))]
            words = words[1:]
        elif opt == "uid" and words:
            printed += ["uid", _user(words[0])]
            words = words[1:]
        elif opt == "lookup" and len(words) > 1 and words[0] in ("uid", "jail"):
            table = ipfw["tables"].get(words[1])
            if table is None:
                raise Refused(f"lookup on table {words[1]} that does not exist is not modelled by the simulated "
                              "host", 70)
            if table["type"] != "number":  # the kernel refuses a lookup key on an address table
                raise Refused("getsockopt(IP_FW_XADD): Invalid argument", 69)
            printed += ["lookup", words[0], words[1]]
            words = words[2:]
        elif opt == "keep-state":
            printed.append("keep-state :default")
            if words[:1] and words[0].startswith(":"):
                words = words[1:]
        else:
            raise Refused(f"option {opt} is not modelled by the simulated host", 70)
    return " ".join(printed)


def _address(word: str) -> str:
    if word in ("any", "me", "me6"):
        return word
    if word.startswith("table(") and word.endswith(")"):
        return word
    try:
        items = [ipaddress.ip_network(part, strict=False) for part in word.split(",")]
    except ValueError:
        raise Refused(f"hostname ``{word}'' unknown", 68) from None  # ipfw2.c: EX_NOHOST
    return ",".join(str(n.network_address) if n.num_addresses == 1 else str(n) for n in items)


def _ports(word: str) -> str:
    for part in word.split(","):
        low, _, high = part.partition("-")
        if not low.isdigit() or high and not high.isdigit() or int(low) > 65535 or high and int(high) > 65535:
            raise Refused(f"invalid port: {part}", 64)
    return word


def _jail(st, word: str) -> int:
    """ipfw2.c: a number is taken as a JID unchecked; a name goes through
    jail_getid(3) now, when the rule is added."""
    if word.isdigit():
        return int(word)
    jail = st["jails"].get(word)
    if jail is None:
        raise Refused(f'jail "{word}" not found', 65)
    return int(jail["jid"])


def _user(word: str) -> str:
    """``uid NAME|N``: getpwnam, else getpwuid: the host's passwd (never a
    jail's: its UID block is not there); listed by name."""
    if word in HOST_USERS:
        return word
    if word.isdigit():
        name = next((n for n, u in HOST_USERS.items() if u == int(word)), None)
        if name is not None:
            return name
    raise Refused(f'uid "{word}" nonexistent', 65)


def _delete(st, words: list[str], quiet: bool) -> None:
    ipfw = state(st)
    if not words or not words[0][:1].isdigit():
        raise Refused("delete without a rule number is not modelled by the simulated host", 70)
    missing = []
    for word in words:
        low, _, high = word.partition("-")
        lo, hi = int(low), int(high or low)
        kept = [r for r in ipfw["rules"] if not lo <= r["number"] <= hi]
        if len(kept) == len(ipfw["rules"]):
            missing.append((lo, hi))
        ipfw["rules"] = kept
    if missing and not quiet:  # ipfw2.c ipfw_delete(): warnx, then exit(EX_UNAVAILABLE)
        lo, hi = missing[-1]
        raise Refused(f"no rules in {lo}-{hi} range" if lo != hi else f"rule {lo} not found", 69)


def count(st, answer: dict) -> None:
    """``sim send``: the packet explain's ANSWER describes, counted on the
    rule that decided it (the first of that number and text)."""
    p = answer["packet"]
    size = (20 if ":" not in p["dst"] else 40) + {"tcp": 20, "udp": 8}.get(p["proto"], 8)
    for rule in state(st)["rules"]:
        if rule["number"] == answer["number"] and rule["body"] == answer["rule"]:
            packets, octets = rule.get("counts", [0, 0])
            rule["counts"] = [packets + 1, octets + size]
            return


def syslog(path: str, answer: dict) -> bool:
    """``sim send``: what the kernel sends syslogd for each rule that matched
    the packet and logs (ip_fw_log.c), appended as syslogd writes it to the
    security log; True when a rule logged."""
    import time

    from ..ipfw.syslog import line

    p = answer["packet"]
    out = p["direction"] == "out"
    lines = [line(time.time(), "simhost", entry["number"], entry["action"], p["proto"], p["src"] or UPLINK_ADDRESS,
                  40000 if out else 50000, p["dst"], p["port"] or 0, p["direction"], p.get("iface") or UPLINK)
             for entry in answer.get("logged") or []]
    if lines:
        with open(path, "a", encoding="utf-8") as fh:
            fh.write("".join(lines))
    return bool(lines)


def _list(st, out, counters: bool, sets: bool) -> None:
    rules = [(r["number"], r["set"], r["body"], r.get("counts", [0, 0])) for r in state(st)["rules"]]
    rules += [(65535, 31, body, [0, 0]) for body in DEFAULT_RULES]
    # ipfw2.c prepare_format_opts(), pr_u64(): each counter right-aligned to the widest of its column
    pcwidth = max(len(str(c[0])) for *_, c in rules)
    bcwidth = max(len(str(c[1])) for *_, c in rules)
    for number, rule_set, body, (packets, octets) in rules:
        count = f" {packets:>{pcwidth}} {octets:>{bcwidth}}" if counters else ""
        in_set = f" set {rule_set}" if sets else ""
        out.append(f"{number:05d}{count}{in_set} {body}\n")


# -- in-kernel nat (nat.c) -----------------------------------------------------------------------------

def _nat(st, words: list[str], quiet: bool, out, err) -> None:
    """main.c swaps "nat N VERB" into "nat VERB N"; VERB config, show or delete."""
    instances = state(st)["nat"]
    if words and words[0].isdigit() and len(words) > 1:
        words = [words[1], words[0], *words[2:]]
    verb, rest = (words[0], words[1:]) if words else ("", [])
    if verb == "config":
        _nat_config(instances, rest, quiet, out)
    elif verb == "show":
        names = [w for w in rest if w != "config"]
        if len(names) == len(rest):
            raise Refused("nat show without config (the log) is not modelled by the simulated host", 70)
        if not names:  # every instance, by number (natname_cmp)
            for name in sorted(instances, key=int):
                out.append(_nat_line(name, instances[name]))
        elif names[0] not in instances:  # nat_get_cmd: the kernel's ESRCH
            raise Refused(f"Error getting nat {names[0]} instance info: No such process", 71)
        else:
            out.append(_nat_line(names[0], instances[names[0]]))
    elif verb == "delete":
        for word in rest:
            if not word[:1].isdigit():
                break
            if instances.pop(str(int(word)), None) is None and not quiet:
                # ipfw_delete_nat: warn(), and the exit status stays 0 when stdin is not a terminal
                err.append(f"ipfw: nat {int(word)} not available: No such process\n")
    else:
        raise Refused(f"nat {verb} is not modelled by the simulated host", 70)


def _nat_config(instances: dict, words: list[str], quiet: bool, out) -> None:
    if not words:
        raise Refused("missing nat id", 65)
    name, words = words[0], words[1:]
    if not name.isdigit() or int(name) <= 0:
        raise Refused(f"illegal nat id: {name}", 65)
    name = str(int(name))
    if not words:
        raise Refused("missing option", 65)
    config: dict = {"ip": None, "redirects": []}
    while words:
        token, words = words[0], words[1:]
        if token == "ip":
            if not words:
                raise Refused("missing option", 65)
            try:
                config["ip"] = str(ipaddress.IPv4Address(words[0]))
            except ValueError:
                raise Refused(f"bad ip address ``{words[0]}''", 65) from None
            words = words[1:]
        elif token == "redirect_port":
            if len(words) < 3:
                raise Refused("redirect_port: not enough arguments", 65)
            proto, local, public = words[:3]
            words = words[3:]
            laddr, _, lport = local.partition(":")
            if proto not in ("tcp", "udp") or not lport.isdigit() or not public.isdigit() or ":" in public:
                raise Refused(f"redirect_port {proto} {local} {public} is not modelled by the simulated host", 70)
            try:
                laddr = str(ipaddress.IPv4Address(laddr))
            except ValueError:
                raise Refused("redirect_port: invalid local port range", 65) from None
            if words and words[0][:1].isdigit():
                raise Refused("redirect_port with a remote address is not modelled by the simulated host", 70)
            config["redirects"].append([proto, laddr, int(lport), int(public)])
        elif token in ("if", "log", "deny_in", "same_ports", "unreg_only", "unreg_cgn", "reset", "reverse",
                       "proxy_only", "skip_global", "port_range", "udp_eim", "redirect_addr", "redirect_proto"):
            raise Refused(f"nat config {token} is not modelled by the simulated host", 70)
        else:
            raise Refused(f"unrecognised option ``{token}''", 65)
    instances[name] = config  # nat44_config: a new instance, or the old one reconfigured (its links kept)
    if not quiet:  # "After every modification, we show the resultant rule."
        out.append(_nat_line(name, config))


def _nat_line(name: str, config: dict) -> str:
    """nat.c nat_show_cfg: "ipfw nat N config", the address, then each redirect."""
    line = f"ipfw nat {name} config" + (f" ip {config['ip']}" if config["ip"] else "")
    for proto, laddr, lport, pport in config["redirects"]:
        line += f" redirect_port {proto} {laddr}:{lport} {pport}"
    return line + "\n"


# -- tables ------------------------------------------------------------------------------------------

def _table(st, words: list[str], quiet: bool, out, err) -> None:
    tables = state(st)["tables"]
    if len(words) < 2:
        raise Refused("table name required", 64)
    name, verb, rest = words[0], words[1], words[2:]
    if name == "all":
        if verb != "list":
            raise Refused(f"table all {verb} is not modelled by the simulated host", 70)
        for each in sorted(tables):
            _show(each, tables[each], out)
        return
    table = tables.get(name)
    if verb == "create":
        if rest[:1] != ["type"] or len(rest) != 2 or rest[1] not in ("number", "addr"):
            raise Refused("table create other than `type number|addr' is not modelled by the simulated host", 70)
        if table is not None:
            raise Refused("Table creation failed: File exists", 71)
        tables[name] = {"type": rest[1], "entries": {}}
    elif verb in ("add", "delete"):
        if table is None:
            raise Refused(f"{verb} to a table that does not exist is not modelled by the simulated host", 70)
        pairs = list(zip(rest[0::2], rest[1::2] + [None])) if verb == "add" else [(k, None) for k in rest]
        if not pairs:
            raise Refused("address required", 64)
        for key, _ in pairs:
            _key(table["type"], key)
        for key, value in pairs:
            key = _key(table["type"], key)
            if verb == "add":
                table["entries"].setdefault(key, value or "0")
            else:
                table["entries"].pop(key, None)
            if not quiet:
                out.append(f"{'added' if verb == 'add' else 'deleted'}: {key} {value or '0'}\n")
    elif verb == "destroy":
        if table is None:
            if not quiet:  # tables.c: ESRCH is not fatal
                err.append(f"ipfw: failed to destroy table {name}: No such process\n")
            return
        del tables[name]
    elif verb == "list":
        if table is None:
            raise Refused("failed to request table info: No such process", 71)
        _show(name, table, out)
    else:
        raise Refused(f"table {verb} is not modelled by the simulated host", 70)


def _key(kind: str, key: str) -> str:
    if kind == "number":
        if not key.isdigit():  # tables.c tentry_fill_key: strtoul, then errx(EX_DATAERR, "Invalid number: %s")
            raise Refused(f"Invalid number: {key}", 65)
        return str(int(key))
    try:
        net = ipaddress.ip_network(key, strict=False)
    except ValueError:
        raise Refused(f"hostname ``{key}'' unknown", 68) from None
    return f"{net.network_address}/{net.prefixlen}"


def _show(name: str, table: dict, out) -> None:
    out.append(f"--- table({name}), set(0) ---\n")
    keys = sorted(table["entries"], key=lambda k: int(k) if k.isdigit() else 0)
    out.extend(f"{key} {table['entries'][key]}\n" for key in keys)
