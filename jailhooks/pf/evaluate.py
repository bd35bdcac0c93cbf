"""pf's verdict for one packet, over rules as pfctl prints them.

The rules it follows, from pf.conf(5) and FreeBSD 15.1's pf.c (pf_test,
pf_test_rule, pf_match_rule, pf_get_translation), summed up in the boxed
notes of the project's FreeBSD facts:

* ``set skip on IF``: packets on IF are not filtered at all;
* a packet that matches a state passes without any rule (replies included);
* translation comes before filtering: out, the first matching ``nat`` rule
  rewrites the source; in, the first ``rdr`` rule rewrites the destination;
  a translation rule's ``tag`` is seen by ``tagged``;
* filter rules: the last matching rule wins, ``quick`` stops at once (also
  inside an anchor); an anchor call is entered only when its own conditions
  match, and ``anchor "P/*"`` walks P's children in the printed (kernel)
  order without recursing;
* a table resolves in the rule's anchor, then in the main ruleset; an
  unknown table matches nothing;
* ports and users with print_op()'s operators (``><`` and ``<>`` exclusive,
  ``:`` inclusive); ``user`` is tested only for tcp/udp (for other protocols
  it does not restrict the rule), and a packet without a local socket
  (forwarded, or arriving) has the unknown uid;
* no rule matched: pass with no state; a pass keeps state and the state lets
  the replies through.

What it cannot see it does not guess: a rule whose modelled conditions match
but which has a condition it does not model (an interface group, an
interface's addresses, route-to, ...) makes the verdict *unproven*, naming
that rule, unless a later rule decides regardless.
"""
from __future__ import annotations

import ipaddress
from functools import lru_cache
from typing import Callable, Optional

from ..probes import Packet
from .listing import Host, PrintedRule

# An unknown interface (None) is one that leaves the host; these do not.
_LOCAL_IFACES = ("lo", "pflog", "pfsync", "enc")


class Verdict:
    def __init__(self, action: str, rule: Optional[PrintedRule] = None, packet: Optional[Packet] = None,
                 state: bool = False, why: str = "", unproven: str = "",
                 translation: Optional[PrintedRule] = None) -> None:
        self.action = action  # pass or block
        self.rule = rule  # the deciding rule (None: the default, a state or set skip)
        self.packet = packet  # as the filter saw it (after translation)
        self.state = state  # the pass created a state (or the packet matched one)
        self.why = why  # "state", "set skip ...", "default" when no rule decided
        self.unproven = unproven  # the rule and construct that kept the verdict from being certain
        self.translation = translation

    def __repr__(self) -> str:
        return f"Verdict({self.action!r}, {self.decided_by()!r})"

    @property
    def passed(self) -> bool:
        return self.action == "pass"

    def decided_by(self) -> str:
        if self.unproven:
            return f"not proven: {self.unproven}"
        if self.rule is None:
            return {"state": "a state (the reply of a passed connection)", "set skip": self.why,
                    "default": "no rule matched: pf passes it, without state",
                    "disabled": "pf is not enabled: it filters nothing (pfctl -e; pf_enable=YES in rc.conf)",
                    }.get(self.why, self.why)
        return where(self.rule)


def where(rule: PrintedRule) -> str:
    return f"{'anchor ' + rule.path if rule.path else 'main ruleset'}: {rule.text}"


TableReader = Callable[[str, str], Optional[list]]  # (anchor path, name) -> entries, None if no such table


class Ruleset:
    """The filter and translation rules (parsed listings), the interfaces pf
    skips, and how to read a table's entries.  JAIL_TABLES ("PARENT/"): the
    anchors whose tables hold only jails' addresses."""

    def __init__(self, filter: list, nat: list, skip: Optional[set] = None,
                 tables: TableReader = lambda path, name: None, jail_tables: str = "",
                 interfaces: Optional[dict] = None, enabled: bool = True) -> None:
        self.enabled = enabled  # pf disabled (pfctl -d) filters nothing, whatever its rules
        self.filter, self.nat, self.skip = filter, nat, skip or set()
        self.tables, self.jail_tables = tables, jail_tables
        self.interfaces = interfaces or {}  # name -> its addresses, the primary one of each family first
        self.states: list = []
        self.why: list = []  # what the last _conditions() could not evaluate

    def _dynamic(self, spec: str) -> Optional[list]:
        """The addresses ``(IF)`` or ``(IF:0)`` stand for (pf.conf(5): ":0 Do
        not include interface aliases"); None when not known here."""
        iface, _, modifier = spec.partition(":")
        if iface not in self.interfaces or modifier not in ("", "0"):
            return None
        addresses = self.interfaces[iface]
        if modifier == "0":
            return [a for a in (next((x for x in addresses if ":" not in x), None),
                                next((x for x in addresses if ":" in x), None)) if a]
        return list(addresses)

    # -- matching ----------------------------------------------------------------------------
    def _table(self, path: str, name: str) -> Optional[list]:
        found = self.tables(path, name)
        if found is None and path:
            found = self.tables("", name)
        return found

    def _host(self, h: Host, addr: Optional[str], path: str) -> Optional[bool]:
        """Does ADDR match H (None: cannot tell)?"""
        if h.kind == "any":
            hit: Optional[bool] = True
        elif addr is None and h.kind == "table" and self.jail_tables and path.startswith(self.jail_tables):
            # the unknown source is the host's own address (a jail without one of
            # its own); a jail anchor's table holds jails' addresses, not the host's
            hit = False
        elif addr is None or h.kind == "other":
            return None
        elif h.kind == "dynamic":
            entries = self._dynamic(h.value)
            if entries is None:
                return None  # the interface's addresses are not known here
            ip = _address(addr)
            hit = any(_in(ip, e) for e in entries)
        else:
            ip = _address(addr)
            if h.kind == "table":
                entries = self._table(path, h.value)
                if entries is None:
                    hit = False  # an unknown table matches nothing
                elif any(e.startswith("!") for e in entries):
                    return None
                else:
                    hit = any(_in(ip, e) for e in entries)
            else:
                hit = _in(ip, h.value)
        return (not hit) if h.neg else hit

    @staticmethod
    def _op(spec: tuple[str, int, int], value: int) -> bool:
        op, a, b = spec
        if op == "=":
            return value == a
        if op == "><":
            return a < value < b
        if op == ":":
            return a <= value <= b
        if op == "!=":
            return value != a
        if op == "<>":
            return value < a or value > b
        return {"<": value < a, "<=": value <= a, ">": value > a, ">=": value >= a}.get(op, False)

    def _conditions(self, r: PrintedRule, pkt: Packet) -> Optional[bool]:
        """Do R's conditions hold for PKT?  None: the modelled ones do, and R
        has one that is not modelled (or a value not known here); self.why
        then says what.  The cheap tests come first: a host with thousands of
        jail rules is walked for every probe."""
        if r.direction and r.direction != pkt.direction:
            return False
        if r.af and r.af != pkt.af:
            return False
        if r.proto and r.proto != pkt.proto:
            return False
        if r.tagged and r.tagged != pkt.tag:
            return False
        if r.user is not None and pkt.proto in ("tcp", "udp"):
            uid = -1 if pkt.uid is None else pkt.uid  # no socket: UID_MAX, printed "unknown"
            if uid == -1 and r.user[0] not in ("=", "!="):
                return False
            if not self._op(r.user, uid):
                return False
        for h, port in ((r.src, pkt.sport), (r.dst, pkt.dport)):
            if h.port is not None and (pkt.proto not in ("tcp", "udp") or not self._op(h.port, port)):
                return False
        if r.icmp_type and (pkt.proto not in ("icmp", "ipv6-icmp") or r.icmp_type != "echoreq"):
            return False
        why = self.why = list(r.unmodelled)  # what could not be evaluated, for the message
        if r.interface:
            local = r.interface.startswith(_LOCAL_IFACES)
            if not r.interface[-1:].isdigit():  # an interface group: its members are not known here
                why.append(f"on {r.interface}: an interface group")
            elif pkt.iface is None:  # some external interface: not lo0, not pflog0
                if not local:
                    why.append(f"on {r.interface}: the interface the packet crosses is not known "
                               "(set [pf] interface to the egress interface; explain: --on IF)")
                elif not r.interface_not:
                    return False
            elif (r.interface == pkt.iface) == r.interface_not:
                return False
        for h, addr in ((r.src, pkt.src), (r.dst, pkt.dst)):
            hit = self._host(h, addr, r.path)
            if hit is False:
                return False
            if hit is None:
                why.append(f"{'! ' if h.neg else ''}{_shown(h)}: " + (
                    "the host's own address is not known here" if addr is None else
                    "the interface's addresses are not known here" if h.kind == "dynamic" else
                    "a table with negated entries" if h.kind == "table" else "not modelled"))
        if r.flags and pkt.proto == "tcp" and r.flags not in ("S/SA", "any", "S/FSRPAUEW", "S/FSRA"):
            why.append(f"flags {r.flags}")
        return None if why else True

    # -- translation ----------------------------------------------------------------------------
    def _translate(self, pkt: Packet) -> tuple[Packet, Optional[PrintedRule], str]:
        want = "nat" if pkt.direction == "out" else "rdr"
        for r, hit in _walk(self.nat, want, self, pkt):
            if hit is None:
                return pkt, None, where(r) + _unmodelled(self.why)
            if not hit:
                continue
            if r.negated:
                return pkt, r, ""
            if r.unmodelled or not r.target:
                return pkt, None, where(r) + _unmodelled(r.unmodelled or ["no translation address"])
            if want == "nat":
                return pkt._replace(src=r.target, tag=r.tag or pkt.tag), r, ""
            return pkt._replace(dst=r.target, dport=r.target_port or pkt.dport, tag=r.tag or pkt.tag), r, ""
        return pkt, None, ""

    # -- one packet -----------------------------------------------------------------------------
    def _state(self, pkt: Packet) -> bool:
        key = (pkt.proto, pkt.src, pkt.sport, pkt.dst, pkt.dport)
        reply = (pkt.proto, pkt.dst, pkt.dport, pkt.src, pkt.sport)
        return any(key in s or reply in s for s in self.states)

    def _skipped(self, pkt: Packet) -> str:
        if pkt.iface is not None:
            return f"set skip on {pkt.iface}" if pkt.iface in self.skip else ""
        external = sorted(i for i in self.skip if not i.startswith(_LOCAL_IFACES))
        return f"set skip on {external[0]}" if external else ""

    def test(self, pkt: Packet) -> Verdict:
        """The verdict for PKT; a pass that keeps state records the state."""
        if not self.enabled:
            return Verdict("pass", None, pkt, why="disabled")
        skipped = self._skipped(pkt)
        if skipped:
            if pkt.iface is None:
                return Verdict("pass", None, pkt, why="set skip",
                               unproven=f"{skipped} (the packet may leave on it, and pf does not filter it)")
            return Verdict("pass", None, pkt, why=skipped)
        if self._state(pkt):
            return Verdict("pass", None, pkt, state=True, why="state")
        wire = pkt
        pkt, translation, unsure = self._translate(pkt)
        if unsure:
            return Verdict("pass", None, pkt, unproven=unsure)
        walk = _Walk(self, pkt)
        walk.rules(self.filter)
        if walk.unproven:
            return Verdict(walk.decided.action if walk.decided else "pass", walk.decided, walk.pkt,
                           unproven=walk.unproven, translation=translation)
        if walk.decided is None:
            return Verdict("pass", None, walk.pkt, why="default", translation=translation)
        r = walk.decided
        keep = r.action == "pass" and (r.keep_state or r.kind == "filter" and "no state" not in r.text)
        if keep:
            self.states.append({(wire.proto, wire.src, wire.sport, wire.dst, wire.dport),
                                (pkt.proto, pkt.src, pkt.sport, pkt.dst, pkt.dport)})
        return Verdict(r.action, r, walk.pkt, state=keep, translation=translation)


class _Walk:
    """One pass over the filter rules: last match wins, quick stops."""

    def __init__(self, rs: Ruleset, pkt: Packet) -> None:
        self.rs, self.pkt = rs, pkt
        self.decided: Optional[PrintedRule] = None
        self.unproven = ""

    def rules(self, rules: list[PrintedRule]) -> bool:
        """Evaluate RULES; True when evaluation ends (quick)."""
        for r in rules:
            if r.kind in ("nat", "rdr", "binat", "nat-anchor", "rdr-anchor", "binat-anchor", "scrub"):
                continue
            hit = self.rs._conditions(r, self.pkt)
            if hit is False:
                continue
            if r.kind == "anchor":
                if hit is None:
                    self.unproven = where(r) + _unmodelled(self.rs.why)
                    return True
                before = self.decided
                for _, inner in r.children:
                    if self.rules(inner):
                        return True
                if r.quick and self.decided is not before:
                    return True
                continue
            if r.kind == "match" or r.kind == "unknown":
                if hit is None or r.kind == "unknown" or r.tag:
                    self.unproven = where(r) + _unmodelled(self.rs.why or ["a rule whose effect is not modelled"])
                    return True
                continue
            if hit is None:
                self.unproven = where(r) + _unmodelled(self.rs.why)
                if r.quick:
                    return True
                continue  # a later rule that matches for certain decides instead
            self.decided, self.unproven = r, ""
            if r.tag:
                self.pkt = self.pkt._replace(tag=r.tag)
            if r.quick:
                return True
        return False


def _walk(rules: list[PrintedRule], want: str, rs: Ruleset, pkt: Packet):
    """(rule, do its conditions hold) for the translation rules of kind WANT
    in evaluation order, through the hooks of that kind that PKT enters."""
    hook = f"{want}-anchor"
    for r in rules:
        if r.kind not in (want, hook):
            continue
        hit = rs._conditions(r, pkt)
        if r.kind == want or hit is None:
            yield r, hit
            if hit is None:
                return
        elif hit:
            for _, inner in r.children:
                yield from _walk(inner, want, rs, pkt)


def _unmodelled(why: list) -> str:
    return f" (cannot evaluate: {', '.join(why) or 'a condition not modelled'})"


def _shown(h: Host) -> str:
    return {"table": f"<{h.value}>", "dynamic": f"({h.value})"}.get(h.kind, h.value)


def _in(ip, entry: str) -> bool:
    net = _network(entry)
    return net is not None and net.version == ip.version and ip in net


# The same few addresses and networks are tested against thousands of rules:
# parse each once per process.
@lru_cache(maxsize=4096)
def _address(text: str):
    return ipaddress.ip_address(text)


@lru_cache(maxsize=65536)
def _network(entry: str):
    try:
        return ipaddress.ip_network(entry, strict=False)
    except ValueError:
        return None
