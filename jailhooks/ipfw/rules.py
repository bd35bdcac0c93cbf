"""ipfw rules as ``ipfw list`` prints them (and as jailhooks writes them),
read into values, and a packet's path through them.

The grammar read is what 15.1's ipfw2.c show_static_rule() prints for the
rules the fixtures hold (tests/fixtures/freebsd-15.1/ipfw): ``NNNNN [set S]
ACTION [log] PROTO from SRC [PORTS] to DST [PORTS] [OPTIONS]``.  Anything
else on a rule (an or-block, ``not``, another action or option) is kept as
*unmodelled*: a rule that could decide with such a part makes the verdict
"not proven", never a guess.

Semantics (ipfw(8)): rules in number order, the first that matches decides;
``count`` counts and goes on; ``skipto N`` goes on at the first rule numbered
N or more; ``setfib`` sets the FIB and goes on; ``check-state`` (and the first
``keep-state`` rule) finds the flow of a ``keep-state`` rule and does what
that rule does (allow, or its skipto); ``jail J`` and ``uid``/``lookup uid T``
match TCP and UDP packets whose local socket belongs to prison J / that user
(ipfw(8): "Matches all TCP or UDP packets sent by or received for the
jail"); ``me`` is any address of the host (a non-VNET jail's addresses are
the host's).

``nat N`` (ip_fw2.c O_NAT, ip_fw_nat.c, ip_fw_pfil.c): a packet that is not
IPv4, or whose instance does not exist, is dropped; otherwise the instance
translates it (out: the source becomes its address, or a redirect's public
port for the redirect's own local port; in: to its address, a redirect's
public port goes to its local address and port; what its link table holds
for replies is not modelled, so they stay as they are), and then, with
``net.inet.ip.fw.one_pass`` 1, it passes; with 0 it goes on at the next rule.
"""
from __future__ import annotations

import ipaddress
from typing import Callable, Optional

from ..probes import Packet

ALLOW, DENY = "allow", "deny"
ACTIONS = {"allow": ALLOW, "accept": ALLOW, "pass": ALLOW, "permit": ALLOW, "deny": DENY, "drop": DENY,
           "reset": DENY, "reject": DENY, "count": "count", "check-state": "check-state"}
PROTOS = {"ip": "ip", "all": "ip", "tcp": "tcp", "udp": "udp", "icmp": "icmp", "icmp6": "ipv6-icmp",
          "ipv6-icmp": "ipv6-icmp"}


class NatInstance:
    """One instance of the in-kernel nat, from its config line ("[ipfw] nat
    N config ip ADDR [redirect_port PROTO LADDR:LPORT PPORT]...")."""

    __slots__ = ("number", "ip", "redirects")

    def __init__(self, number: int, ip: Optional[str], redirects: list[tuple[str, str, int, int]]) -> None:
        self.number, self.ip, self.redirects = number, ip, redirects

    @classmethod
    def parse(cls, line: str) -> Optional["NatInstance"]:
        words = line.split()
        if words[:1] == ["ipfw"]:
            words = words[1:]
        if len(words) < 3 or words[0] != "nat" or not words[1].isdigit() or words[2] != "config":
            return None
        ip, redirects, rest = None, [], words[3:]
        while rest:
            if rest[0] == "ip" and len(rest) > 1:
                ip, rest = rest[1], rest[2:]
            elif rest[0] == "redirect_port" and len(rest) > 3 and ":" in rest[2] and rest[3].isdigit():
                laddr, _, lport = rest[2].partition(":")
                redirects.append((rest[1], laddr, int(lport), int(rest[3])))
                rest = rest[4:]
            else:
                return None  # a configuration the evaluator does not model
        return cls(int(words[1]), ip, redirects)

    def translate(self, pkt: Packet) -> Packet:
        if pkt.direction == "out":
            for proto, laddr, lport, pport in self.redirects:
                if (proto, laddr, lport) == (pkt.proto, pkt.src, pkt.sport):
                    return pkt._replace(src=self.ip, sport=pport)
            return pkt._replace(src=self.ip)
        if pkt.dst != self.ip:
            return pkt
        for proto, laddr, lport, pport in self.redirects:
            if (proto, pport) == (pkt.proto, pkt.dport):
                return pkt._replace(dst=laddr, dport=lport)
        return pkt


LOGGED_AS = {ALLOW: "Accept", DENY: "Deny", "count": "Count", "nat": "Nat"}  # ip_fw_log.c's names


class Rule:
    __slots__ = ("number", "text", "action", "arg", "log", "proto", "src", "sport", "dst", "dport", "direction",
                 "iface", "jail", "uid", "lookups", "keep_state", "unmodelled")

    def __init__(self, number: int, text: str) -> None:
        self.number, self.text = number, text
        self.action, self.arg, self.log = "", 0, False
        self.proto = "ip"
        self.src = self.dst = "any"
        self.sport = self.dport = ""
        self.direction = ""  # "in", "out" or "" (both)
        self.iface: tuple[str, str] | None = None  # (xmit|recv|via, name)
        self.jail: int | None = None
        self.uid: str | None = None
        self.lookups: list[tuple[str, str]] = []  # ("uid"|"jail", table)
        self.keep_state = False
        self.unmodelled: list[str] = []

    def __repr__(self) -> str:
        return f"Rule({self.number}, {self.text!r})"

    @property
    def logged_as(self) -> str:
        """The action as ipfw logs it (ip_fw_log.c ipfw_log_syslog)."""
        return f"SkipTo {self.arg}" if self.action == "skipto" else LOGGED_AS.get(self.action, "UNKNOWN")


def parse_line(line: str) -> Optional[Rule]:
    """One line of ``ipfw list`` ("NNNNN body", or with -S "NNNNN set S body"),
    or jailhooks' own "add N body"; None for what is not a rule."""
    words = line.split()
    if words[:1] == ["add"]:
        words = words[1:]
    if not words or not words[0].isdigit():
        return None
    rule = Rule(int(words[0]), " ".join(words[1:]))
    words = words[1:]
    if words[:1] == ["set"] and len(words) > 1:
        words = words[2:]
    if "//" in words:  # a comment
        words = words[:words.index("//")]
    _parse_body(rule, words)
    return rule


def _parse_body(rule: Rule, words: list[str]) -> None:
    if not words:
        rule.unmodelled.append("no action")
        return
    head = words.pop(0)
    if head in ACTIONS:
        rule.action = ACTIONS[head]  # reset and reject answer the sender: still a block
        if head == "check-state":
            if words[:1] and words[0].startswith(":"):
                words.pop(0)
            if words:
                rule.unmodelled.append(" ".join(words))
            return
    elif head in ("skipto", "setfib", "nat") and words and words[0].isdigit():
        rule.action, rule.arg = head, int(words.pop(0))
    else:
        rule.action = "other"
        rule.unmodelled.append(f"action {head}")
        return
    if words[:1] == ["log"]:
        rule.log = True
        words.pop(0)
        while words[:1] in (["logamount"], ["logdst"]) and len(words) > 1:  # ipfw2.c: in either order
            words[:2] = []
    if not words or words[0] not in PROTOS:
        rule.unmodelled.append(f"protocol {words[0] if words else '(none)'}")
        return
    rule.proto = PROTOS[words.pop(0)]
    for side in ("from", "to"):
        if words[:1] != [side] or len(words) < 2:
            rule.unmodelled.append(f"no {side}")
            return
        address = words[1]
        words[:2] = []
        if address == "not" or address == "{":
            rule.unmodelled.append(f"{side} {address} ...")
            return
        setattr(rule, "src" if side == "from" else "dst", address)
        if words and words[0][:1].isdigit() and "." not in words[0] and ":" not in words[0]:
            setattr(rule, "sport" if side == "from" else "dport", words.pop(0))
    while words:
        opt = words.pop(0)
        if opt in ("in", "out"):
            rule.direction = opt
        elif opt in ("xmit", "recv", "via") and words:
            rule.iface = (opt, words.pop(0))
        elif opt == "jail" and words and words[0].isdigit():
            rule.jail = int(words.pop(0))
        elif opt == "uid" and words:
            rule.uid = words.pop(0)
        elif opt == "lookup" and len(words) > 1 and words[0] in ("uid", "jail"):
            rule.lookups.append((words[0], words[1]))
            words[:2] = []
        elif opt == "keep-state":
            rule.keep_state = True
            if words[:1] and words[0].startswith(":"):
                words.pop(0)
        else:
            rule.unmodelled.append(opt)


def parse_listing(lines: list[str]) -> list[Rule]:
    return [r for r in (parse_line(line) for line in lines if not line.startswith("#")) if r is not None]


# -- a packet's path --------------------------------------------------------------------------------

class Verdict:
    __slots__ = ("action", "rule", "unproven", "state", "translated", "logged")

    def __init__(self, action: str, rule: Optional[Rule], unproven: str = "", state: bool = False,
                 translated: Optional[tuple[Rule, Packet]] = None) -> None:
        self.action = action  # "pass" or "block" (the words the policy uses)
        self.rule, self.unproven, self.state = rule, unproven, state
        self.translated = translated  # (the nat rule, the packet as it translated it)
        self.logged: list[Rule] = []  # the rules on the way that matched and log, in order

    @property
    def passed(self) -> bool:
        return self.action == "pass"

    def decided_by(self) -> str:
        if self.rule is None:
            return "no rule (ipfw is not enabled)" if self.action == "pass" else "no rule"
        return f"rule {self.rule.number:05d} {self.rule.text}"


class Ruleset:
    """What ipfw holds: RULES (number order), TABLES(name) -> keys or None (not
    known), JAILED: the jails' addresses (the host's too: ``me``; never the
    host's own address, which a packet from a jail without one leaves with),
    USERS(name) -> uid or None, ENABLED: net.inet.ip.fw.enable, NATS: the nat
    instances by number (None: not known), ONE_PASS: net.inet.ip.fw.one_pass
    (None: not known)."""

    def __init__(self, rules: list[Rule], tables: Callable[[str], Optional[list[str]]] = lambda name: None,
                 jailed: frozenset = frozenset(), users: Callable[[str], Optional[int]] = lambda name: None,
                 enabled: bool = True, nats: Optional[dict[int, Optional[NatInstance]]] = None,
                 one_pass: Optional[bool] = None) -> None:
        self.rules = sorted(rules, key=lambda r: r.number)
        self.tables, self.jailed, self.users, self.enabled = tables, jailed, users, enabled
        self.nats, self.one_pass = nats, one_pass

    def test(self, pkt: Packet, jid: Optional[int] = None, states: Optional[dict] = None) -> Verdict:
        """PKT's verdict; JID: the prison of its local socket (None: none, or
        not a jail's); STATES: flows a keep-state rule matched (flow -> that
        rule), which this call adds to."""
        if not self.enabled:
            return Verdict("pass", None)
        states = {} if states is None else states
        doubts: list[tuple[Rule, str]] = []
        translated: Optional[tuple[Rule, Packet]] = None
        logged: list[Rule] = []  # what the rules that matched and log on the way would log
        i = 0
        while i < len(self.rules):
            rule = self.rules[i]
            i += 1
            if rule.action in ("count", "setfib"):
                continue  # they go on, whatever matched
            if rule.action == "check-state" or rule.keep_state:
                parent = states.get(_flow(pkt, reverse=True)) or states.get(_flow(pkt))
                if parent is not None:
                    if parent.action == "skipto":  # the state does what its rule does
                        i = self._after(parent, i)
                        continue
                    return self._decide(Verdict("pass", rule, state=True, translated=translated), doubts, logged)
                if rule.action == "check-state":
                    continue
            match, why = self._matches(rule, pkt, jid)
            if match is False:
                continue
            if match is None or rule.unmodelled:
                doubts.append((rule, why or ", ".join(rule.unmodelled)))
                continue
            if rule.log:
                logged.append(rule)
            if rule.keep_state and rule.action in (ALLOW, "skipto"):
                states[_flow(pkt)] = rule
            if rule.action == "skipto":
                i = self._after(rule, i)
                continue
            if rule.action == "nat":
                verdict = self._nat(rule, pkt)
                if isinstance(verdict, Verdict):
                    verdict.translated = translated
                    return self._decide(verdict, doubts, logged)
                if _fields(verdict) != _fields(pkt):  # nat leaves what it has no link for as it is
                    translated = (rule, verdict)
                pkt = verdict
                if self.one_pass is None:
                    doubts.append((rule, "net.inet.ip.fw.one_pass is not known"))
                    continue
                if self.one_pass:
                    return self._decide(Verdict("pass", rule, translated=translated), doubts, logged)
                continue  # one_pass 0: on at the next rule, translated
            if rule.action == ALLOW:
                verdict = Verdict("pass", rule, state=rule.keep_state, translated=translated)
                return self._decide(verdict, doubts, logged)
            if rule.action == DENY:
                return self._decide(Verdict("block", rule, translated=translated), doubts, logged)
            doubts.append((rule, f"action {rule.action}"))
        return self._decide(Verdict("block", None, translated=translated), doubts, logged)

    def _after(self, rule: Rule, i: int) -> int:
        """Where skipto RULE goes on: the first rule numbered its argument or
        more, never back (ip_fw2.c jump: a target at or before the rule goes
        on at the next one)."""
        return next((k for k, r in enumerate(self.rules) if r.number >= rule.arg and k >= i), len(self.rules))

    def _nat(self, rule: Rule, pkt: Packet) -> "Verdict | Packet":
        """The packet as nat RULE leaves it, or the verdict when it drops it."""
        if ":" in pkt.dst:
            return Verdict("block", rule)  # O_NAT: libalias takes IPv4 only, the rest is dropped
        if self.nats is None:
            return Verdict("block", rule, unproven=f"rule {rule.number:05d} {rule.text} (cannot evaluate: the nat "
                                                   "instances could not be read)")
        if rule.arg not in self.nats:
            return Verdict("block", rule)  # no such instance: IP_FW_DENY
        instance = self.nats[rule.arg]
        if instance is None:
            return Verdict("block", rule, unproven=f"rule {rule.number:05d} {rule.text} (cannot evaluate: its "
                                                   "nat configuration is not modelled)")
        return instance.translate(pkt)

    @staticmethod
    def _decide(verdict: Verdict, doubts: list[tuple[Rule, str]], logged: list[Rule]) -> Verdict:
        """An earlier rule that might have matched decides otherwise only if its
        action differs: then the verdict is not proven."""
        verdict.logged = logged
        for rule, why in doubts:
            same = (rule.action == ALLOW) == verdict.passed and rule.action in (ALLOW, DENY)
            if not same:
                verdict.unproven = f"rule {rule.number:05d} {rule.text} (cannot evaluate: {why})"
                break
        return verdict

    def _matches(self, rule: Rule, pkt: Packet, jid: Optional[int]) -> tuple[Optional[bool], str]:
        sockets = pkt.proto in ("tcp", "udp")
        if rule.direction and rule.direction != pkt.direction:
            return False, ""
        if rule.proto != "ip" and rule.proto != pkt.proto:
            return False, ""
        results = [self._address(rule.src, pkt.src), self._address(rule.dst, pkt.dst)]
        for spec, port in ((rule.sport, pkt.sport), (rule.dport, pkt.dport)):
            if spec:
                results.append((sockets and _in_ports(spec, port), ""))
        if rule.iface is not None:
            kind, name = rule.iface
            wrong_way = kind == "xmit" and pkt.direction != "out" or kind == "recv" and pkt.direction != "in"
            results.append((False, "") if wrong_way else (None, f"{kind} {name}: the interface is not known")
                           if pkt.iface is None else (pkt.iface == name, ""))
        if rule.jail is not None:
            results.append((sockets and jid == rule.jail, ""))
        if rule.uid is not None:
            uid = int(rule.uid) if rule.uid.isdigit() else self.users(rule.uid)
            results.append((None, f"uid {rule.uid}: not a known user") if uid is None else
                           (sockets and pkt.uid is not None and pkt.uid == uid, ""))
        for kind, table in rule.lookups:
            value = pkt.uid if kind == "uid" else jid
            if not sockets or value is None:
                results.append((False, ""))
                continue
            keys = self.tables(table)
            results.append((None, f"table {table} could not be read") if keys is None else (str(value) in keys, ""))
        if any(r is False for r, _ in results):
            return False, ""
        doubt = next((why for r, why in results if r is None), "")
        return (None, doubt) if doubt else (True, "")

    def _address(self, spec: str, address: Optional[str]) -> tuple[Optional[bool], str]:
        if spec == "any":
            return True, ""
        if spec in ("me", "me6"):
            if address is None:
                return True, ""  # the host's own address
            return (address in self.jailed and (spec == "me6") == (":" in address)), ""
        if address is None:
            if all(part in self.jailed for part in spec.split(",")):
                return False, ""  # a jail's address is not the host's own
            return None, f"{spec}: the host's own address is not known"
        if spec.startswith("table("):
            name = spec[len("table("):-1].split(",")[0]
            keys = self.tables(name)
            if keys is None:
                return None, f"table {name} could not be read"
            spec = ",".join(keys) or "0.0.0.0/32"
        try:
            ip = ipaddress.ip_address(address)
            return any(ip in ipaddress.ip_network(part, strict=False) for part in spec.split(",")
                       if (":" in part) == (ip.version == 6)), ""
        except ValueError:
            return None, f"address {spec}"


def _in_ports(spec: str, port: int) -> bool:
    for part in spec.split(","):
        low, _, high = part.partition("-")
        if low.isdigit() and int(low) <= port <= int(high or low):
            return True
    return False


def _fields(pkt: Packet) -> tuple:
    return tuple(getattr(pkt, name) for name in Packet.__slots__)


def _flow(pkt: Packet, reverse: bool = False) -> tuple:
    if reverse:
        return (pkt.proto, pkt.dst, pkt.dport, pkt.src, pkt.sport)
    return (pkt.proto, pkt.src, pkt.sport, pkt.dst, pkt.dport)
