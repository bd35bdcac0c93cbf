"""The policy of one jail, as a value, knowing no firewall.

What the config and the plugins say a jail may send and receive: typed rules
(``Filter``, ``Nat``, ``Rdr``, validated when they are made, every value
copied into an exact built-in type), each knowing the plugin it came from,
how the jail is known (``match``, resolved), its UID block, and what happens
to the rest.  The checks that do not depend on the firewall live here: a
match needs what it matches on, translation needs addresses, a pass for the
jail's users never grants more than the jail's own passes.

The engine builds it once per phase (``ctx.policy()``); a firewall backend
renders it (pf: jailhooks/pf/render.py) in five ordered bands (``bands``):
users' blocks, jail blocks, users' passes, jail passes, the default block.
"""
from __future__ import annotations

from typing import Iterable, NamedTuple, Optional, Union

from . import validate

MATCHES = ("address", "uid", "both")
# The policy's own keys (match, default, log, interface, allow, block, users,
# inbound, rdr) are read from [pf] and [jail.NAME.pf], where 0.3 put them.
POLICY_SECTION = "pf"

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


def resolve_match(match: str, has_addresses: bool) -> str:
    """``auto``: the jail's addresses when it has any, else its UID block."""
    if match == "auto":
        return "address" if has_addresses else "uid"
    return match


def checked(plugin: str, rule: object) -> Filter | Nat | Rdr:
    """RULE made again through its validating constructor: a plugin's value
    built with ``_replace``, ``_make`` or a subclass cannot reach the anchor
    unchecked, and anything that is not a rule is refused, naming the plugin."""
    kind = next((k for k in (Filter, Nat, Rdr) if isinstance(rule, k)), None)
    if kind is None:
        raise ValueError(f"plugin {plugin}: jailhooks_policy_rules returned {type(rule).__name__}, "
                         "not a Filter, Nat or Rdr")
    try:
        return kind(*rule)  # type: ignore[misc]
    except (TypeError, ValueError) as exc:
        raise ValueError(f"plugin {plugin}: invalid {kind.__name__}: {exc}") from None


def covers(wide: Filter, narrow: Filter) -> bool:
    """Does WIDE (a pass for the jail) let through everything NARROW does?"""
    if wide.proto and (not narrow.proto or set(narrow.proto) - set(wide.proto)):
        return False
    if wide.to and wide.to != ("any",):
        if not narrow.to or narrow.to == ("any",):
            return False
        for dest in narrow.to:
            if dest in wide.to:
                continue
            if dest.startswith("<") or not any(
                    not w.startswith("<") and w != "any" and _within(dest, w) for w in wide.to):
                return False
    if wide.port:
        if not narrow.port:
            return False
        spans = [_span(p) for p in wide.port]
        if not all(any(lo <= a and b <= hi for lo, hi in spans) for a, b in map(_span, narrow.port)):
            return False
    return True


def _within(inner: str, outer: str) -> bool:
    import ipaddress

    a, b = ipaddress.ip_network(inner), ipaddress.ip_network(outer)
    return a.version == b.version and a.subnet_of(b)


def _span(port: str) -> tuple[int, int]:
    low, _, high = port.partition(":")
    return int(low), int(high or low)


def describe_rule(rule: Filter) -> str:
    parts = [f"proto {'/'.join(rule.proto)}" if rule.proto else "any proto",
             f"to {', '.join(rule.to)}" if rule.to else "to any"]
    if rule.port:
        parts.append(f"port {', '.join(rule.port)}")
    return " ".join(parts)




class Policy:
    """One jail's policy.  MATCH is resolved (address, uid or both; see
    resolve_match); CONTRIBUTIONS are (plugin name, rules) in call order.
    Construction checks everything that does not depend on the firewall
    (ValueError naming the jail and, for a rule, its plugin)."""

    def __init__(self, jail: str, ip4: tuple[str, ...] = (), ip6: tuple[str, ...] = (),
                 uid_range: Optional[tuple[int, int]] = None, match: str = "address",
                 interface: Optional[str] = None, default: str = "block", log_blocked: bool = True,
                 contributions: tuple[tuple[str, tuple], ...] = (), vnet: bool = False, learn: bool = False) -> None:
        self.jail = jail
        # learn mode: what the default block would drop is passed and logged instead (its explicit
        # blocks still block), so that `jailhooks suggest` can turn the logged flows into an allow list
        self.learn = learn
        self.ip4, self.ip6 = tuple(ip4), tuple(ip6)
        self.uid_range = uid_range
        self.match = match
        self.interface = interface
        self.default = default
        self.log_blocked = log_blocked
        self.contributions = contributions
        self.vnet = vnet
        self.addresses = self.ip4 + self.ip6
        if match not in MATCHES:
            raise ValueError(f"match {match!r} is not one of {', '.join(MATCHES)}")
        if match in ("address", "both") and not self.addresses:
            raise ValueError(f"jail {jail} has no addresses, so its traffic cannot be matched by address "
                             "(give it ip4/ip6 or use match = \"uid\")")
        if vnet and match != "address":
            raise ValueError(f"jail {jail} is a VNET jail: its UIDs do not reach the host's firewall, "
                             "so it can only be matched by address")
        # the UID block as the firewall sees it: a VNET jail's sockets are in its own stack
        self.users = uid_range if uid_range is not None and not vnet else None
        if match in ("uid", "both") and self.users is None:
            raise ValueError(f"jail {jail} has no UID block (lease), needed for match = \"{match}\"")
        self.filters: list[tuple[str, Filter]] = []
        self.nats: list[tuple[str, Nat]] = []
        self.rdrs: list[tuple[str, Rdr]] = []
        for plugin, rules in contributions:
            for rule in rules:
                rule = checked(plugin, rule)
                bucket = self.filters if isinstance(rule, Filter) else self.nats if isinstance(rule, Nat) else self.rdrs
                bucket.append((plugin, rule))  # type: ignore[arg-type]
        if (self.nats or self.rdrs) and not self.addresses:
            raise ValueError(f"jail {jail} has no addresses of its own: its traffic cannot be translated "
                             "(NAT and port forwards need the jail's addresses)")
        if self.rdrs and not self.nats:
            raise ValueError(f"jail {jail}: a port forward (rdr) needs the jail's NAT (saddr.nat)")
        if any(r.users for _, r in self.filters) and self.users is None:
            raise ValueError(f"jail {jail}: rules for the jail's users need its UID block"
                             + (" (a VNET jail's UIDs do not reach the host's firewall)" if vnet else " (lease)"))
        self._check_users_narrow()

    def _check_users_narrow(self) -> None:
        """A pass for the jail's users never grants more than the jail's own."""
        if self.default == "pass":
            return
        jail_passes = [r for _, r in self.filters if r.action == "pass" and r.direction == "out" and not r.users]
        for plugin, rule in self.filters:
            if rule.users and rule.action == "pass" and not any(covers(w, rule) for w in jail_passes):
                raise ValueError(f"jail {self.jail}: a pass for the jail's users ({describe_rule(rule)}, from "
                                 f"{plugin}) is not within one of the jail's own passes: a UID rule never grants "
                                 "a jail more than its address rules")

    def outbound(self, users: bool, action: str) -> list[tuple[str, Filter]]:
        return [(p, r) for p, r in self.filters if r.direction == "out" and r.users == users and r.action == action]

    def inbound(self, action: str) -> list[tuple[str, Filter]]:
        return [(p, r) for p, r in self.filters if r.direction == "in" and r.action == action]

    def bands(self) -> list[tuple[str, list[tuple[str, Filter]]]]:
        """The outbound rules in the order every backend applies them, first
        match deciding: (title, [(plugin, rule)]).  When the users have
        passes, the rest of what they send is blocked (a last users' rule,
        plugin ""); the default block is the backend's own last band."""
        users_pass = self.outbound(True, "pass")
        if users_pass:
            users_pass = users_pass + [("", Filter(action="block", proto=("tcp", "udp"), users=True,
                                                  log=self.log_blocked))]
        return [("1. blocks for the jail's users", self.outbound(True, "block")),
                ("2. blocks for the jail", self.outbound(False, "block")),
                ("3. passes for the jail's users", users_pass),
                ("4. passes for the jail", self.outbound(False, "pass"))]
