"""Render one jail's anchor as pf.conf text.

Who is who (``match``, resolved before rendering):
* ``address``: the jail is known by its addresses (``from <table>``).  A
  jailed process cannot send from an address its jail does not hold, so
  this is the strong identity, and the jail's rules apply to every process
  in it, whatever its UID (root, www, postfix 125, postgres 770 ...).
* ``uid``: the jail is known by its UID block (``user FIRST-1 >< LAST+1``),
  for jails without an address of their own.  pf tests ``user`` only for
  local tcp/udp sockets, and a jailed root can switch to any UID (also into
  another jail's block): this is the weak identity.
* ``both``: the strict form: only the block's UIDs, and only from the
  jail's addresses, get the jail's pass rules (daemons outside the block
  are blocked).
The jail's **users** (its UID block) can have rules of their own
(``Filter(users=True)``): they narrow, never widen, what the jail may send.

Every rule is ``quick``, so the first rule that matches decides, and the
rules come in this order (shown in the rendered text):
  translation (nat, rdr); inbound blocks, inbound passes, forwarded ports;
  1. blocks for the jail's users; 2. blocks for the jail;
  3. passes for the jail's users (and, if there are any, a block of the rest
     of what the users send); 4. passes for the jail; 5. the default block.
So a block rule, from the config or a plugin, is never shadowed by a
broader pass.  A NAT'ed jail's packets leave with the NAT address (pf
translates before it filters), so its outbound rules are also emitted with
``tagged TAG``, the tag its nat rule sets.  A VNET jail has a network stack
of its own: its packets reach the host's pf as they come *in* from the jail,
with no socket, so its egress rules are ``in`` rules on its addresses.
"""
from __future__ import annotations

from .. import validate
from .rules import Filter, Nat, Rdr

MATCHES = ("address", "uid", "both")


class Names:
    """The pf names derived from one jail name; all injective and valid."""

    __slots__ = ("jail", "anchor", "table", "tag", "label")

    def __init__(self, jail: str, anchor: str, table: str, tag: str, label: str) -> None:
        self.jail, self.anchor, self.table, self.tag, self.label = jail, anchor, table, tag, label

    @classmethod
    def of(cls, jail: str, parent: str) -> "Names":
        component = validate.anchor_component(jail)
        label = f"jailhooks:{validate.bounded(jail, 53)}"  # PF_RULE_LABEL_SIZE is 64
        return cls(
            jail=jail,
            anchor=f"{parent}/{component}",
            table=validate.pf_identifier("jail", jail, validate.TABLE_NAME_MAX),
            tag=validate.pf_identifier("JH", jail, 63),
            label=label,
        )


class AnchorSpec:
    """Everything one jail's anchor is rendered from.  MATCH is resolved
    (address, uid or both; see resolve_match)."""

    def __init__(self, names: Names, ip4: tuple[str, ...] = (), ip6: tuple[str, ...] = (),
                 uid_range: tuple[int, int] | None = None, match: str = "address", interface: str | None = None,
                 default: str = "block", log_blocked: bool = True,
                 contributions: tuple[tuple[str, tuple], ...] = (), vnet: bool = False) -> None:
        self.names = names
        self.ip4, self.ip6 = ip4, ip6
        self.uid_range = uid_range
        self.match = match
        self.interface = interface
        self.default = default
        self.log_blocked = log_blocked
        self.contributions = contributions  # (plugin name, rules) in call order
        self.vnet = vnet
        self.text = ""  # the rendered anchor, once rendered


def resolve_match(match: str, has_addresses: bool) -> str:
    """``auto``: the jail's addresses when it has any, else its UID block."""
    if match == "auto":
        return "address" if has_addresses else "uid"
    return match


def _list(items) -> str:
    items = tuple(items)
    return items[0] if len(items) == 1 else "{ " + " ".join(items) + " }"


def _ports(ports: tuple[str, ...]) -> str:
    return f" port {_list(ports)}" if ports else ""


def _proto(protos: tuple[str, ...]) -> str:
    return f" proto {_list(protos)}" if protos else ""


def checked(plugin: str, rule: object) -> Filter | Nat | Rdr:
    """RULE made again through its validating constructor: a plugin's value
    built with ``_replace``, ``_make`` or a subclass cannot reach the anchor
    unchecked, and anything that is not a rule is refused, naming the plugin."""
    kind = next((k for k in (Filter, Nat, Rdr) if isinstance(rule, k)), None)
    if kind is None:
        raise ValueError(f"plugin {plugin}: jailhooks_pf_rules returned {type(rule).__name__}, "
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


class Renderer:
    def __init__(self, spec: AnchorSpec):
        self.spec = spec
        n = self.names = spec.names
        self.addresses = spec.ip4 + spec.ip6
        if spec.match not in MATCHES:
            raise ValueError(f"match {spec.match!r} is not one of {', '.join(MATCHES)}")
        if spec.match in ("address", "both") and not self.addresses:
            raise ValueError(f"jail {n.jail} has no addresses, so pf cannot match its traffic by address "
                             "(give it ip4/ip6 or use match = \"uid\")")
        if spec.vnet and spec.match != "address":
            raise ValueError(f"jail {n.jail} is a VNET jail: its UIDs do not reach the host's pf, "
                             "so it can only be matched by address")
        self.user = ""
        if spec.uid_range is not None and not spec.vnet:
            first, last = spec.uid_range
            # pf has no inclusive range for users: FIRST-1 >< LAST+1 (pf.conf(5)).
            self.user = f" user {first - 1} >< {last + 1}"
        if spec.match in ("uid", "both") and not self.user:
            raise ValueError(f"jail {n.jail} has no UID block (lease), needed for match = \"{spec.match}\"")
        self.filters: list[tuple[str, Filter]] = []
        self.nats: list[tuple[str, Nat]] = []
        self.rdrs: list[tuple[str, Rdr]] = []
        for plugin, rules in spec.contributions:
            for rule in rules:
                rule = checked(plugin, rule)
                bucket = self.filters if isinstance(rule, Filter) else self.nats if isinstance(rule, Nat) else self.rdrs
                bucket.append((plugin, rule))  # type: ignore[arg-type]
        if (self.nats or self.rdrs) and not self.addresses:
            raise ValueError(f"jail {n.jail} has no addresses of its own: pf cannot translate its traffic "
                             "(NAT and port forwards need the jail's addresses)")
        if self.rdrs and not self.nats:
            raise ValueError(f"jail {n.jail}: a port forward (rdr) needs the jail's NAT (saddr.nat)")
        users = [r for _, r in self.filters if r.users]
        if users and not self.user:
            raise ValueError(f"jail {n.jail}: rules for the jail's users need its UID block"
                             + (" (a VNET jail's UIDs do not reach the host's pf)" if spec.vnet else " (lease)"))
        self.tagged = bool(self.nats) and not spec.vnet
        self.src = f" from <{n.table}>" if spec.match in ("address", "both") else " from any"
        self._check_users_narrow()

    def _check_users_narrow(self) -> None:
        """A pass for the jail's users never grants more than the jail's own."""
        if self.spec.default == "pass":
            return
        jail_passes = [r for _, r in self.filters if r.action == "pass" and r.direction == "out" and not r.users]
        for plugin, rule in self.filters:
            if rule.users and rule.action == "pass" and not any(covers(w, rule) for w in jail_passes):
                raise ValueError(f"jail {self.names.jail}: a pass for the jail's users ({_describe(rule)}, from "
                                 f"{plugin}) is not within one of the jail's own passes: a UID rule never grants "
                                 "a jail more than its address rules")

    # -- pieces ---------------------------------------------------------------------
    def _label(self) -> str:
        return f' label "{self.names.label}"'

    def _on(self) -> str:
        return f" on {self.spec.interface}" if self.spec.interface else ""

    def _outbound(self, rule: Filter) -> list[str]:
        """One egress rule: for the whole jail, or for its users."""
        protos = rule.proto
        # the block's UIDs: for the jail's users, for a jail known by them, and
        # (strict "both") on the jail's passes; a block for the jail holds any UID
        match = self.spec.match
        user = self.user if rule.users or match == "uid" or match == "both" and rule.action == "pass" else ""
        if user and (rule.users or match == "uid"):
            if set(protos) - {"tcp", "udp"}:
                raise ValueError(f"jail {self.names.jail}: match = \"uid\" can only filter tcp and udp")
            protos = protos or ("tcp", "udp")  # pf ignores user for other protocols
        state = " keep state" if rule.action == "pass" else ""
        log = " log" if rule.log else ""
        to = f" to {_list(rule.to) if rule.to else 'any'}{_ports(rule.port)}"
        if self.spec.vnet:  # the jail's packets entering the host
            return [f"{rule.action} in{log} quick{_proto(protos)} from <{self.names.table}>{to}{state}{self._label()}"]
        head = f"{rule.action} out{log} quick{self._on()}{_proto(protos)}"
        lines = [f"{head}{self.src}{to}{user}{state}{self._label()}"]
        if self.tagged:
            lines.append(f"{head} from any{to}{user} tagged {self.names.tag}{state}{self._label()}")
        return lines

    def _inbound(self, rule: Filter) -> str:
        if self.spec.match == "uid":
            raise ValueError(f"jail {self.names.jail}: inbound rules need the jail's addresses (match = \"uid\")")
        peers = _list(rule.peers) if rule.peers else "any"
        state = " keep state" if rule.action == "pass" else ""
        on = "" if self.spec.vnet else self._on()
        return (f"{rule.action} in{' log' if rule.log else ''} quick{on}{_proto(rule.proto)} "
                f"from {peers} to <{self.names.table}>{_ports(rule.port)}{state}{self._label()}")

    def _nat(self, rule: Nat) -> str:
        af = "inet" if rule.family == 4 else "inet6"
        return f"nat on {rule.interface} {af} from <{self.names.table}> to any tag {self.names.tag} -> {rule.target}"

    def _forwards(self) -> tuple[list[str], list[tuple[str, str]]]:
        """rdr rules on each NAT address, and the passes of what they forward."""
        rdr, passes = [], []
        for fwd_plugin, fwd in self.rdrs:
            for _, nat in self.nats:
                inside = next((a for a in self.addresses if (":" in a) == (nat.family == 6)), None)
                if inside is None:
                    continue
                af = "inet" if nat.family == 4 else "inet6"
                peers = _list(fwd.peers) if fwd.peers else "any"
                rdr.append(f"rdr on {nat.interface} {af}{_proto(fwd.proto)} from {peers} to {nat.target} "
                           f"port {fwd.port} -> {inside} port {fwd.to_port}")
                # the filter sees the translated destination: the jail's address and port
                passes.append((fwd_plugin, f"pass in quick on {nat.interface} {af}{_proto(fwd.proto)} from {peers} to {inside} "
                              f"port {fwd.to_port} keep state{self._label()}"))
        if self.rdrs and not rdr:
            raise ValueError(f"jail {self.names.jail}: no address of the NAT's family to forward ports to")
        return rdr, passes

    def _default_block(self) -> list[str]:
        """What the jail sends that no rule passed: blocks that hold whatever
        UID its processes run as, and whichever address they leave with."""
        log = " log" if self.spec.log_blocked else ""
        n = self.names
        if self.spec.vnet:
            return [f"block in{log} quick from <{n.table}> to any{self._label()}"]
        head = f"block out{log} quick{self._on()}"
        lines = []
        if self.spec.match in ("address", "both"):  # any UID, jailed root included
            lines.append(f"{head} from <{n.table}> to any{self._label()}")
        if self.user:  # the block's users, wherever they send from; pf tests user on tcp/udp only
            lines.append(f"{head} proto {{ tcp udp }} from any to any{self.user}{self._label()}")
        if self.tagged:
            lines.append(f"{head} from any to any tagged {n.tag}{self._label()}")
        return lines

    # -- the anchor -------------------------------------------------------------------
    def render(self) -> str:
        s, n = self.spec, self.names
        identity = {"address": "its addresses", "uid": "its UID block", "both": "its addresses and UID block"}
        out = [f'# jailhooks anchor "{n.anchor}": generated, do not edit',
               f"# the jail is known by {identity[s.match]}"
               + (f"; its users are UIDs {s.uid_range[0]}-{s.uid_range[1]}" if self.user else "")
               + ("; VNET: filtered as its packets enter the host" if s.vnet else ""),
               "# every rule is quick: the first match decides"]
        if self.addresses:
            out.append(f"table <{n.table}> const {{ {' '.join(self.addresses)} }}")
        rdr, forwarded = self._forwards()
        if self.nats:
            out.append("# translation")
            out.extend(self._nat(r) for _, r in self.nats)
            out.extend(rdr)
        outbound = [(p, r) for p, r in self.filters if r.direction == "out"]
        inbound = [(p, r) for p, r in self.filters if r.direction == "in"]
        sections = [
            ("inbound blocks", [(p, self._inbound(r)) for p, r in inbound if r.action == "block"]),
            ("inbound passes", [(p, self._inbound(r)) for p, r in inbound if r.action == "pass"] + forwarded),
            ("1. blocks for the jail's users", self._rules(outbound, True, "block")),
            ("2. blocks for the jail", self._rules(outbound, False, "block")),
            ("3. passes for the jail's users", self._user_passes(outbound)),
            ("4. passes for the jail", self._rules(outbound, False, "pass")),
            ("5. block everything else the jail sends",
             [("", line) for line in self._default_block()] if s.default == "block" else []),
        ]
        for title, lines in sections:
            if lines:
                out.append(f"# {title}")
                origin = None
                for plugin, line in lines:
                    if plugin and plugin != origin:
                        out.append(f"# from plugin {validate.shown(plugin)}")
                    origin = plugin
                    out.append(line)
        return "\n".join(out) + "\n"

    def _rules(self, rules: list[tuple[str, Filter]], users: bool, action: str) -> list[tuple[str, str]]:
        return [(p, line) for p, r in rules if r.users == users and r.action == action for line in self._outbound(r)]

    def _user_passes(self, rules: list[tuple[str, Filter]]) -> list[tuple[str, str]]:
        lines = self._rules(rules, True, "pass")
        if lines:  # the users may send only what their passes list
            rest = Filter(action="block", proto=("tcp", "udp"), users=True, log=self.spec.log_blocked)
            lines.extend(("", line) for line in self._outbound(rest))
        return lines


def _describe(rule: Filter) -> str:
    parts = [f"proto {'/'.join(rule.proto)}" if rule.proto else "any proto",
             f"to {', '.join(rule.to)}" if rule.to else "to any"]
    if rule.port:
        parts.append(f"port {', '.join(rule.port)}")
    return " ".join(parts)


def render_anchor(spec: AnchorSpec) -> str:
    """The anchor text; raises ValueError when the policy cannot be expressed."""
    return Renderer(spec).render()
