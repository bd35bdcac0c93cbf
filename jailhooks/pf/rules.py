"""Typed pf rule contributions, validated on construction.

Plugins return these from ``jailhooks_pf_rules``; they never write rule text.
Every field is checked here, so nothing unvalidated can reach an anchor.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Iterable, Union

from .. import validate

PROTOCOLS = ("tcp", "udp", "icmp", "ipv6-icmp")


def _tuple(values: Iterable | str | int | None, check) -> tuple:
    if values is None:
        return ()
    if isinstance(values, (str, int)):
        values = [values]
    return tuple(check(v) for v in values)


def _proto(value: object) -> str:
    if value == "icmp6":
        value = "ipv6-icmp"
    if value not in PROTOCOLS:
        raise ValueError(f"protocol {value!r} is not one of tcp, udp, icmp, icmp6")
    return value  # type: ignore[return-value]


@dataclass(frozen=True)
class Filter:
    """A filter rule for the jail's traffic.

    ``direction="out"``: traffic the jail sends; its source is the jail (its
    address table and/or UID block, as the policy's ``match`` says).
    ``direction="in"``: traffic to the jail; its destination is the jail and
    ``peers`` restrict the source.  ``to`` holds destinations (outbound) and
    ``port`` the destination ports.
    """

    action: str = "pass"
    direction: str = "out"
    proto: tuple[str, ...] = ()
    to: tuple[str, ...] = ()
    port: tuple[str, ...] = ()
    peers: tuple[str, ...] = ()
    log: bool = False

    def __post_init__(self) -> None:
        if self.action not in ("pass", "block"):
            raise ValueError(f"action {self.action!r} is not pass or block")
        if self.direction not in ("in", "out"):
            raise ValueError(f"direction {self.direction!r} is not in or out")
        object.__setattr__(self, "proto", _tuple(self.proto, _proto))
        object.__setattr__(self, "to", _tuple(self.to, validate.destination))
        object.__setattr__(self, "port", _tuple(self.port, validate.port))
        object.__setattr__(self, "peers", _tuple(self.peers, validate.destination))
        if not isinstance(self.log, bool):
            raise ValueError("log must be true or false")
        if self.peers and self.direction == "out" or self.to and self.direction == "in":
            raise ValueError("'to' restricts outbound rules, 'peers' (from) inbound ones")
        if self.port and (not self.proto or set(self.proto) - {"tcp", "udp"}):
            raise ValueError("a port needs proto tcp and/or udp")
        if "any" in self.to and len(self.to) > 1 or "any" in self.peers and len(self.peers) > 1:
            raise ValueError("'any' cannot be combined with other hosts")


@dataclass(frozen=True)
class Nat:
    """Outbound NAT of the jail's addresses of one family to ``target``."""

    interface: str
    target: str

    def __post_init__(self) -> None:
        object.__setattr__(self, "interface", validate.interface(self.interface))
        target = validate.network(self.target)
        if "/" in target:
            raise ValueError("a NAT target must be one address")
        object.__setattr__(self, "target", target)

    @property
    def family(self) -> int:
        return 6 if ":" in self.target else 4


Contribution = Union[Filter, Nat]
