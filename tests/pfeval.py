"""A small evaluator of pf's matching semantics, for tests only.

It answers "would this packet pass?" over a main ruleset (contrib/pf.conf)
and the jail anchors, parsed with the simulated pfctl's grammar.  The rules
it follows, from pf.conf(5) and FreeBSD 15.1's pf.c (pf_test, pf_test_rule,
pf_match_rule, pf_get_translation), as summed up in shared/docs/freebsd.md:

* a packet that matches a state passes without any rule (replies included);
* translation comes before filtering: out, the first matching ``nat`` rule
  rewrites the source; in, the first ``rdr`` rule rewrites the destination;
  a translation rule's ``tag`` is seen by ``tagged``;
* filter rules: the last matching rule wins, ``quick`` stops at once (also
  inside an anchor); ``anchor "P/*"`` walks P's children in strcmp order of
  their names, without recursing;
* a table resolves in the rule's anchor, then in the main ruleset; an unknown
  table matches nothing;
* ports: ``=``, and ``LOW:HIGH`` inclusive; users: ``= N``, and ``A >< B``
  exclusive; ``user`` is tested only for tcp/udp (for other protocols it does
  not restrict the rule), and a packet without a local socket (forwarded, or
  arriving) has the unknown uid, which no range matches;
* ``set skip on IF``: packets on IF are not filtered at all;
* no rule matched: pass with no state; a pass keeps state (pf's default) and
  the state lets the replies through.
"""
from __future__ import annotations

import ipaddress
from dataclasses import dataclass, field, replace

from jailhooks.pf.syntax import Address, Rule, parse


@dataclass(frozen=True)
class Packet:
    iface: str
    direction: str  # "in" or "out"
    proto: str  # tcp, udp, icmp, ipv6-icmp
    src: str
    dst: str
    sport: int = 40000
    dport: int = 0
    uid: int | None = None  # owner of the local socket; None: no socket
    tag: str = ""

    @property
    def af(self) -> int:
        return ipaddress.ip_address(self.src).version


@dataclass
class Verdict:
    action: str  # pass or block
    rule: str = ""  # the deciding rule's anchor and line ("" for the default)
    packet: Packet | None = None  # after translation
    state: bool = False

    @property
    def passed(self) -> bool:
        return self.action == "pass"


@dataclass
class Firewall:
    main_text: str
    anchors: dict[str, str] = field(default_factory=dict)
    states: list[tuple] = field(default_factory=list)

    def __post_init__(self) -> None:
        self.main = parse(self.main_text, in_anchor=False)
        self.skip = _skipped(self.main_text)
        self.parsed = {name: parse(text, in_anchor=True) for name, text in self.anchors.items()}

    # -- rulesets in evaluation order ------------------------------------------------------
    def _walk(self, kinds: tuple[str, ...], hook: str):
        """(anchor, ruleset, rule) in the order pf evaluates them."""
        for rule in self.main.rules:
            if rule.kind == hook:
                for name in self._children(rule.anchor):
                    for inner in self.parsed[name].rules:
                        if inner.kind in kinds:
                            yield name, self.parsed[name], inner, rule
            elif rule.kind in kinds:
                yield "", self.main, rule, None

    def _children(self, pattern: str) -> list[str]:
        if pattern.endswith("/*"):
            parent = pattern[:-2]
            return sorted((a for a in self.parsed if a.rsplit("/", 1)[0] == parent), key=lambda a: a.encode())
        return [pattern] if pattern in self.parsed else []

    # -- matching --------------------------------------------------------------------------
    def _host(self, hosts: list[Address], addr: str, ruleset) -> bool:
        ip = ipaddress.ip_address(addr)
        for h in hosts:
            if h.text == "any":
                return True
            if h.text.startswith("<"):
                name = h.text[1:-1]
                table = ruleset.tables.get(name, self.main.tables.get(name))
                if table is not None and any(ip in ipaddress.ip_network(t, strict=False) for t in table
                                             if ipaddress.ip_network(t, strict=False).version == ip.version):
                    return True
                continue
            net = ipaddress.ip_network(h.text, strict=False)
            if net.version == ip.version and ip in net:
                return True
        return False

    @staticmethod
    def _port(ports: list[str], port: int) -> bool:
        if not ports:
            return True
        for p in ports:
            low, _, high = p.partition(":")
            if int(low) <= port <= int(high or low):
                return True
        return False

    @staticmethod
    def _user(spec: str, pkt: Packet) -> bool:
        if not spec or pkt.proto not in ("tcp", "udp"):
            return True
        if pkt.uid is None:  # UID_MAX: only = / != could name it
            return False
        words = spec.split()
        if words[0] == "=":
            return pkt.uid == int(words[1])
        low, op, high = words
        assert op == "><", spec
        return int(low) < pkt.uid < int(high)

    def _matches(self, r: Rule, pkt: Packet, ruleset, hook: Rule | None) -> bool:
        if hook is not None and hook.interface and hook.interface != pkt.iface:
            return False
        if r.direction and r.direction != pkt.direction:
            return False
        if r.interface and r.interface != pkt.iface:
            return False
        if r.af and r.af != pkt.af:
            return False
        if r.protos and pkt.proto not in r.protos:
            return False
        if not self._host(r.src, pkt.src, ruleset) or not self._host(r.dst, pkt.dst, ruleset):
            return False
        if not self._port(r.src_ports, pkt.sport) or not self._port(r.dst_ports, pkt.dport):
            return False
        if r.tagged and r.tagged != pkt.tag:
            return False
        return self._user(r.user, pkt)

    # -- one packet ----------------------------------------------------------------------------
    def _state(self, pkt: Packet) -> bool:
        key = (pkt.proto, pkt.src, pkt.sport, pkt.dst, pkt.dport)
        reply = (pkt.proto, pkt.dst, pkt.dport, pkt.src, pkt.sport)
        return any(key in s or reply in s for s in self.states)

    def _translate(self, pkt: Packet) -> Packet:
        kind = "nat" if pkt.direction == "out" else "rdr"
        hook = "nat-anchor" if kind == "nat" else "rdr-anchor"
        for _, ruleset, r, h in self._walk((kind,), hook):
            if r.interface and r.interface != pkt.iface:
                continue
            if h is not None and h.interface and h.interface != pkt.iface:
                continue
            if r.af and r.af != pkt.af or r.protos and pkt.proto not in r.protos:
                continue
            if not (self._host(r.src, pkt.src, ruleset) and self._host(r.dst, pkt.dst, ruleset)
                    and self._port(r.src_ports, pkt.sport) and self._port(r.dst_ports, pkt.dport)):
                continue
            target = r.target.text  # type: ignore[union-attr]
            if kind == "nat":
                return replace(pkt, src=target, tag=r.tag or pkt.tag)
            return replace(pkt, dst=target, dport=int(r.target_port or pkt.dport), tag=r.tag or pkt.tag)
        return pkt

    def test(self, pkt: Packet) -> Verdict:
        """The verdict for PKT; a pass that keeps state records the state."""
        if pkt.iface in self.skip:
            return Verdict("pass", "set skip", pkt)
        if self._state(pkt):
            return Verdict("pass", "state", pkt, state=True)
        wire = pkt
        pkt = self._translate(pkt)
        decided: tuple[Rule, str] | None = None
        for anchor, ruleset, r, hook in self._walk(("filter",), "anchor"):
            if self._matches(r, pkt, ruleset, hook):
                decided = (r, anchor)
                if r.quick:
                    break
        if decided is None:
            return Verdict("pass", "", pkt)  # the default: pass, no state
        r, anchor = decided
        action = "pass" if r.action == "pass" else "block"
        keep = action == "pass" and r.state != "no state"
        if keep:
            self.states.append({(wire.proto, wire.src, wire.sport, wire.dst, wire.dport),
                                (pkt.proto, pkt.src, pkt.sport, pkt.dst, pkt.dport)})
        return Verdict(action, f"{anchor or 'main'}:{r.line}", pkt, state=keep)


def _skipped(text: str) -> set[str]:
    out: set[str] = set()
    for line in text.splitlines():
        words = line.split("#", 1)[0].replace("{", " ").replace("}", " ").split()
        if words[:3] == ["set", "skip", "on"]:
            out.update(words[3:])
    return out
