"""Probe packets: what a jail's policy is tested with, whatever the firewall.

Derived from the policy alone (jailhooks/policy.py): one per outbound rule
(as root and as one of the jail's users, whichever UIDs the match sees), per
inbound rule and port forward (with its reply), and one for the default
block (a port no pass lists).  Each backend evaluates them twice: over the
jail's own rules alone (what the policy means) and over what its firewall
holds (what happens), and a difference is a finding.
"""
from __future__ import annotations

import ipaddress
from typing import Optional

from .policy import Filter, Policy


class Packet:
    """One packet as pf sees it on one interface, in one direction."""

    __slots__ = ("iface", "direction", "proto", "src", "dst", "sport", "dport", "uid", "tag")

    def __init__(self, iface: Optional[str], direction: str, proto: str, src: Optional[str], dst: str,
                 sport: int = 40000, dport: int = 0, uid: Optional[int] = None, tag: str = "") -> None:
        self.iface = iface  # None: not known (some external interface)
        self.direction = direction  # "in" or "out"
        self.proto = proto  # tcp, udp, icmp, ipv6-icmp
        self.src = src  # None: not known (the host's own address, for a jail without one)
        self.dst = dst
        self.sport, self.dport = sport, dport
        self.uid = uid  # owner of the local socket; None: no socket
        self.tag = tag

    def _replace(self, **changes) -> "Packet":
        fields = {name: getattr(self, name) for name in self.__slots__}
        fields.update(changes)
        return Packet(**fields)

    def __repr__(self) -> str:
        return (f"Packet({self.iface!r}, {self.direction!r}, {self.proto!r}, {self.src!r}, {self.dst!r}, "
                f"sport={self.sport}, dport={self.dport}, uid={self.uid!r}, tag={self.tag!r})")

    @property
    def af(self) -> int:
        return 6 if ":" in self.dst else 4



# Documentation addresses (RFC 5737, RFC 3849) stand for "somewhere else".
WORLD = {4: "198.51.100.1", 6: "2001:db8:ffff::1"}
CLIENT = {4: "198.51.100.7", 6: "2001:db8:ffff::7"}
USER_OFFSET = 5  # a user the jail's admin created: inside the block, not its first UID


class Probe:
    __slots__ = ("what", "packet", "reply")

    def __init__(self, what: str, packet: Packet, reply: Optional[Packet] = None) -> None:
        self.what, self.packet = what, packet
        self.reply = reply  # inbound: the jail's answer, which the state must pass


# -- probes ---------------------------------------------------------------------------------------

def probes(spec: Policy) -> list[Probe]:
    """The packets that show whether SPEC's policy holds."""
    by_family = {4: spec.ip4[0] if spec.ip4 else None, 6: spec.ip6[0] if spec.ip6 else None}
    user = spec.users[0] + USER_OFFSET if spec.users else None
    iface = None if spec.vnet else egress(spec)
    out: list[Probe] = []

    def who(rule_users: bool, action: str) -> list[tuple[str, Optional[int]]]:
        """Whose sockets send: the UIDs the rule is about, as the match sees them."""
        if spec.vnet:
            return [("from the jail", None)]  # no socket on the host
        root, member = ("as root", 0), (f"as its user {user}", user)
        if rule_users or spec.match == "uid":
            return [member] if user is not None else []
        if spec.match == "both":  # passes hold for the block's UIDs, blocks for every UID
            return [member] if action == "pass" else [root]
        return [root, member] if user is not None else [root]

    def outbound(what: str, proto: str, dst: Optional[str], port: int, users: bool, action: str) -> None:
        family = ipaddress.ip_address(dst).version if dst else 4 if by_family[4] or not by_family[6] else 6
        src = by_family[family]  # a jail with addresses sends from them, whatever its match
        if src is None and (spec.match != "uid" or spec.vnet):
            return  # no address of that family: the jail cannot send such a packet
        for label, uid in who(users, action):  # src None: the host's own address (a jail without one)
            pkt = Packet(iface, "in" if spec.vnet else "out", proto, src, dst or WORLD[family],
                         dport=port if proto in ("tcp", "udp") else 0, uid=uid)
            out.append(Probe(f"{what} {label}", pkt))

    for plugin, rule in spec.filters:
        if rule.direction != "out":
            continue
        proto, port = _proto_port(rule)
        dst = _one_host(rule.to)
        if dst == "":
            continue  # a table: no address to probe with
        kind = "users' " if rule.users else ""
        outbound(f"{kind}{rule.action} {_describe(proto, dst, port)} (from {plugin})", proto, dst, port,
                 rule.users, rule.action)
    if spec.default == "block":
        passes = [rule for _, rule in spec.filters if rule.action == "pass" and rule.direction == "out"]
        free = _unlisted(passes)
        if free is not None:
            proto, port = free
            outbound(f"default block: {_describe(proto, None, port)}", proto, None, port, False, "block")
    for plugin, rule in spec.filters:
        if rule.direction != "in":
            continue
        proto, port = _proto_port(rule)
        for family in (4, 6):
            peer = _one_host(rule.peers) or CLIENT[family]
            if not by_family[family] or peer == "" or ipaddress.ip_address(peer).version != family:
                continue
            pkt = Packet(iface, "in", proto, peer, by_family[family], sport=50000, dport=port)
            reply = Packet(iface, "out", proto, by_family[family], peer, sport=port, dport=50000)
            out.append(Probe(f"inbound {rule.action} {proto} from {peer} to port {port} (from {plugin})", pkt,
                             reply if rule.action == "pass" else None))
    for plugin, fwd in spec.rdrs:
        for _, nat in spec.nats:
            inside = by_family.get(nat.family)
            peer = _one_host(fwd.peers) or CLIENT[nat.family]
            if inside is None or peer == "" or ipaddress.ip_address(peer).version != nat.family:
                continue
            pkt = Packet(nat.interface, "in", fwd.proto[0], peer, nat.target, sport=50001, dport=int(fwd.port))
            reply = Packet(nat.interface, "out", fwd.proto[0], inside, peer, sport=int(fwd.to_port), dport=50001)
            out.append(Probe(f"port forward {fwd.proto[0]} {nat.target}:{fwd.port} -> {inside}:{fwd.to_port} "
                             f"(from {plugin})", pkt, reply))
    return out


def egress(spec: Policy) -> Optional[str]:
    """The interface a jail's packets are taken to cross: the policy's own
    ([pf] interface), else its NAT's; None when not known."""
    return spec.interface or (spec.nats[0][1].interface if spec.nats else None)


def _proto_port(rule: Filter) -> tuple[str, int]:
    proto = rule.proto[0] if rule.proto else "tcp"
    port = int(rule.port[0].split(":")[0]) if rule.port else (443 if proto in ("tcp", "udp") else 0)
    return proto, port


def _one_host(hosts: tuple[str, ...]) -> Optional[str]:
    """An address inside the first of HOSTS; None for any; "" for a table."""
    if not hosts or hosts[0] == "any":
        return None
    if hosts[0].startswith("<"):
        return ""
    net = ipaddress.ip_network(hosts[0], strict=False)
    return str(net.network_address if net.num_addresses == 1 else next(net.hosts()))


def _span(port: str) -> tuple[int, int]:
    """'80' -> (80, 80), '1000:2000' -> (1000, 2000): an inclusive range."""
    low, _, high = port.partition(":")
    return int(low), int(high or low)


def _describe(proto: str, dst: Optional[str], port: int) -> str:
    text = f"{proto} to {dst or 'any'}"
    return f"{text} port {port}" if proto in ("tcp", "udp") else text


def _unlisted(passes: list[Filter]) -> Optional[tuple[str, int]]:
    """A (proto, port) to WORLD that no pass lets through."""
    for proto in ("tcp", "udp", "icmp"):
        mine = [p for p in passes if not p.proto or proto in p.proto]
        if any(not p.port and (not p.to or p.to == ("any",)) for p in mine):
            continue
        if proto == "icmp":
            return proto, 0
        spans = [_span(port) for p in mine for port in p.port]
        for port in (9, 7, 13, 19, 37, 79, 113, *range(1, 65536)):
            if not any(lo <= port <= hi for lo, hi in spans):
                return proto, port
    return None


def require(ctx, problems: list[str], doubts: list[str], loaded: str) -> None:
    """Fail the phase on the first of PROBLEMS (findings where the live
    firewall may let through what the policy blocks), naming how many more
    there are; note each of DOUBTS (a pass that could not be proven).
    LOADED says what is loaded but not enforced, for the message."""
    from . import validate
    from .errors import JailhooksError

    for doubt in doubts:
        ctx.note(f"warning: {validate.escaped(doubt, 400)}")
    if problems:
        more = f" (and {len(problems) - 1} more: jailhooks check {ctx.jail.name})" if len(problems) > 1 else ""
        raise JailhooksError(f"jail {ctx.jail.name}: {loaded}: {validate.escaped(problems[0], 400)}{more}")
