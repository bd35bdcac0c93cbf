"""Typed pf rule contributions, validated on construction.

Plugins return these from ``jailhooks_pf_rules``; they never write rule text.
Every field is checked when a rule is made, so nothing unvalidated can reach
an anchor.
"""
from __future__ import annotations

from typing import Iterable, NamedTuple, Union

from .. import validate

PROTOCOLS = ("tcp", "udp", "icmp", "ipv6-icmp")


def _tuple(values: Union[Iterable, str, int, None], check) -> tuple:
    """A plugin's value or list of values, each checked and copied (CHECK
    returns exact built-in values): a tuple of plain str."""
    if values is None:
        return ()
    if isinstance(values, (str, int)):
        values = [values]
    return tuple(check(v) for v in list(values))


def _proto(value: object) -> str:
    value = validate.exact(value)
    if value == "icmp6":
        value = "ipv6-icmp"
    if value not in PROTOCOLS:
        raise ValueError(f"protocol {value!r} is not one of tcp, udp, icmp, icmp6")
    return value  # type: ignore[return-value]


class _FilterFields(NamedTuple):
    action: str = "pass"
    direction: str = "out"
    proto: tuple[str, ...] = ()
    to: tuple[str, ...] = ()
    port: tuple[str, ...] = ()
    peers: tuple[str, ...] = ()
    log: bool = False
    users: bool = False


class Filter(_FilterFields):
    """A filter rule for the jail's traffic, validated when it is made.

    ``direction="out"``: traffic the jail sends; its source is the jail (its
    address table and/or UID block, as the policy's ``match`` says); ``to``
    holds destinations.  ``direction="in"``: traffic to the jail; ``peers``
    restrict the source.  ``port`` holds destination ports.
    ``users=True``: the rule applies only to the jail's users (the UIDs of its
    block), not to the whole jail; such rules match tcp and udp only (pf
    tests ``user`` on local tcp/udp sockets).
    """

    __slots__ = ()

    def __new__(cls, action: str = "pass", direction: str = "out", proto=(), to=(), port=(), peers=(),
                log: bool = False, users: bool = False) -> "Filter":
        action, direction = validate.exact(action), validate.exact(direction)
        if action not in ("pass", "block"):
            raise ValueError(f"action {action!r} is not pass or block")
        if direction not in ("in", "out"):
            raise ValueError(f"direction {direction!r} is not in or out")
        if not isinstance(log, bool) or not isinstance(users, bool):
            raise ValueError("log and users must be true or false")
        self = super().__new__(cls, action, direction, _tuple(proto, _proto), _tuple(to, validate.destination),
                               _tuple(port, validate.port), _tuple(peers, validate.destination), log, users)
        if self.peers and direction == "out" or self.to and direction == "in":
            raise ValueError("'to' restricts outbound rules, 'peers' (from) inbound ones")
        if self.port and (not self.proto or set(self.proto) - {"tcp", "udp"}):
            raise ValueError("a port needs proto tcp and/or udp")
        if "any" in self.to and len(self.to) > 1 or "any" in self.peers and len(self.peers) > 1:
            raise ValueError("'any' cannot be combined with other hosts")
        if users and (direction != "out" or set(self.proto) - {"tcp", "udp"}):
            raise ValueError("rules for the jail's users are outbound tcp/udp rules (pf matches users on sockets)")
        return self


class _NatFields(NamedTuple):
    interface: str
    target: str


class Nat(_NatFields):
    """Outbound NAT of the jail's addresses of one family to ``target``."""

    __slots__ = ()

    def __new__(cls, interface: str, target: str) -> "Nat":
        target = validate.network(target)
        if "/" in target:
            raise ValueError("a NAT target must be one address")
        return super().__new__(cls, validate.interface(interface), target)

    @property
    def family(self) -> int:
        return 6 if ":" in self.target else 4


class _RdrFields(NamedTuple):
    proto: tuple[str, ...]
    port: str
    to_port: str = ""
    peers: tuple[str, ...] = ()


class Rdr(_RdrFields):
    """A port forward to the jail: connections to ``port`` of the jail's NAT
    address (its Nat's interface and target) go to ``to_port`` (default: the
    same port) of the jail's own address, and are passed in with state."""

    __slots__ = ()

    def __new__(cls, proto=("tcp",), port: object = None, to_port: object = None, peers=()) -> "Rdr":
        protos = _tuple(proto, _proto)
        if not protos or set(protos) - {"tcp", "udp"}:
            raise ValueError("a port forward needs proto tcp and/or udp")
        port = validate.port(port)
        to_port = port if to_port is None else validate.port(to_port)
        if ":" in port or ":" in to_port:
            raise ValueError("a port forward takes one port, not a range")
        return super().__new__(cls, protos, port, to_port, _tuple(peers, validate.destination))


Contribution = Union[Filter, Nat, Rdr]
