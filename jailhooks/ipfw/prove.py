"""Enforced, not just loaded, under ipfw: the jail's probe packets
(jailhooks/probes.py) over its own rules alone (what the policy means: its
rules, then nothing else deciding) and over everything ipfw holds (``ipfw
list``, the tables its rules look up, ``net.inet.ip.fw.enable``).  A
difference, or a block that cannot be proven, fails the start closed."""
from __future__ import annotations

import pwd
from typing import Any, Optional

from ..policy import Policy
from ..probes import Probe, probes
from .render import Rendered
from .rules import NatInstance, Ruleset, Verdict, parse_line, parse_listing


class Finding:
    __slots__ = ("probe", "expected", "live", "leg")

    def __init__(self, probe: Probe, expected: Verdict, live: Verdict, leg: str = "") -> None:
        self.probe, self.expected, self.live, self.leg = probe, expected, live, leg

    @property
    def fails_open(self) -> bool:
        return not self.live.unproven or not self.expected.passed

    def __str__(self) -> str:
        leg = " (its reply)" if self.leg else ""
        if self.live.unproven:
            return f"{self.probe.what}{leg}: not proven: {self.live.unproven}"
        return (f"{self.probe.what}{leg}: ipfw would {self.live.action} it, the policy says "
                f"{self.expected.action}; decided by {self.live.decided_by()}")


def alone(rendered: Rendered) -> Ruleset:
    """The jail's rules with nothing else deciding (a last allow, as pf's
    default pass stands behind a jail's anchor), its nat instances as it
    configures them, and one_pass 0, which its NAT needs."""
    rules = [parse_line(f"{number:05d} {body}") for number, body in rendered.rules]
    rules.append(parse_line("65535 allow ip from any to any"))
    tables = {rendered.table[0]: [str(uid) for uid in rendered.table[1]]} if rendered.table else {}
    nats = {n.number: n for n in (NatInstance.parse(line) for line in rendered.nats) if n is not None}
    return Ruleset([r for r in rules if r is not None], tables=tables.get, nats=nats, one_pass=False)


def _user(name: str) -> Optional[int]:
    try:
        return pwd.getpwnam(name).pw_uid  # the host's passwd, which ipfw read when the rule was added
    except KeyError:
        return None


def live(host: Any, jails: Optional[list] = None) -> Ruleset:
    """What ipfw holds now; JAILS: jls's running jails (read if not given)."""
    enabled = host.ipfw_enabled()
    rules = parse_listing(host.ipfw_list())
    cache: dict[str, Optional[list[str]]] = {}

    def tables(name: str) -> Optional[list[str]]:
        if name not in cache:
            cache[name] = host.ipfw_table(name)
        return cache[name]

    jails = host.jails() if jails is None else jails
    jailed = frozenset(a for j in jails if not j.get("vnet") for a in j["ip4"] + j["ip6"])
    nats, one_pass = None, None
    if any(rule.action == "nat" for rule in rules):  # read only where a rule translates
        nats = {number: NatInstance.parse(line) for number, line in host.ipfw_nat().items()}
        one_pass = one_pass_of(host)
    return Ruleset(rules, tables=tables, jailed=jailed, users=_user, enabled=enabled, nats=nats, one_pass=one_pass)


def one_pass_of(host: Any) -> Optional[bool]:
    """net.inet.ip.fw.one_pass: does a packet nat translated leave ipfw (True)?"""
    value = host.sysctl("net.inet.ip.fw.one_pass")
    return None if value is None else value != "0"


def prove(policy: Policy, rendered: Rendered, ruleset: Ruleset, jid: Optional[int]) -> list[Finding]:
    """The probes whose live verdict is not the one the jail's rules alone give.
    JID: the jail's prison, for its TCP and UDP sockets (None before it exists)."""
    own = alone(rendered)
    own.jailed = ruleset.jailed | frozenset(policy.addresses)
    found = []
    for probe in probes(policy):
        socket = jid if probe.packet.proto in ("tcp", "udp") and not policy.vnet else None
        mine: dict = {}
        theirs: dict = {}
        expected, got = own.test(probe.packet, socket, mine), ruleset.test(probe.packet, socket, theirs)
        if got.unproven or expected.action != got.action:
            found.append(Finding(probe, expected, got))
            continue
        if probe.reply is not None and expected.passed:
            expected, got = own.test(probe.reply, socket, mine), ruleset.test(probe.reply, socket, theirs)
            if got.unproven or expected.action != got.action:
                found.append(Finding(probe, expected, got, "reply"))
    return found
