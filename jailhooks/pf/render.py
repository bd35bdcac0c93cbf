"""Render one jail's anchor as pf.conf text.

The anchor holds, in pf's required order: the jail's address table, its
translation rules, then its filter rules, every rule ``quick`` and labelled
with the jail, so that ``pfctl -k label -k LABEL`` finds its states.

How the jail's own traffic is recognised (``match``):
* ``address``: ``from <table>``, the jail's addresses;
* ``uid``: ``user FIRST-1 >< LAST+1``, the lease's UID block (a jailed root
  can switch to any UID, so this alone is weak);
* ``both``: both at once (the default when the jail has a lease).
A NAT'ed jail's packets leave with the NAT address: pf translates before it
filters, so each outbound rule is also emitted with ``tagged TAG`` (the tag
its nat rule sets).
"""
from __future__ import annotations

from .. import validate
from .rules import Filter, Nat


# Plain classes: these two are made once per run, and a NamedTuple costs about
# 0.2 ms to define on every hook run.
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
    """Everything one jail's anchor is rendered from."""

    def __init__(self, names: Names, ip4: tuple[str, ...] = (), ip6: tuple[str, ...] = (),
                 uid_range: tuple[int, int] | None = None, match: str = "both", interface: str | None = None,
                 default: str = "block", log_blocked: bool = True,
                 contributions: tuple[tuple[str, tuple], ...] = ()) -> None:
        self.names = names
        self.ip4, self.ip6 = ip4, ip6
        self.uid_range = uid_range
        self.match = match
        self.interface = interface
        self.default = default
        self.log_blocked = log_blocked
        # (plugin name, rules) in call order; translation and filter kept apart
        self.contributions = contributions


def _list(items: tuple[str, ...]) -> str:
    return items[0] if len(items) == 1 else "{ " + " ".join(items) + " }"


def _ports(ports: tuple[str, ...]) -> str:
    return f" port {_list(ports)}" if ports else ""


def _proto(protos: tuple[str, ...]) -> str:
    return f" proto {_list(protos)}" if protos else ""


class Renderer:
    def __init__(self, spec: AnchorSpec):
        self.spec = spec
        self.names = spec.names
        match = spec.match
        if match in ("address", "both") and not (spec.ip4 or spec.ip6):
            raise ValueError(f"jail {self.names.jail} has no addresses, so pf cannot match its traffic by address "
                             "(give it ip4/ip6 or use match = \"uid\")")
        if match in ("uid", "both") and spec.uid_range is None:
            raise ValueError(f"jail {self.names.jail} has no UID block (lease), needed for match = \"{match}\"")
        self.use_table = match in ("address", "both")
        self.user = ""
        if match in ("uid", "both"):
            first, last = spec.uid_range  # type: ignore[misc]
            # pf has no inclusive range for users: FIRST-1 >< LAST+1 (pf.conf(5)).
            self.user = f" user {first - 1} >< {last + 1}"
        self.nat_tag = any(isinstance(r, Nat) for _, rules in spec.contributions for r in rules)

    def _on(self) -> str:
        return f" on {self.spec.interface}" if self.spec.interface else ""

    def _outbound(self, rule: Filter) -> list[str]:
        protos = rule.proto
        if not self.use_table:  # UID match only: pf applies "user" to tcp/udp only
            if set(protos) - {"tcp", "udp"}:
                raise ValueError(f"jail {self.names.jail}: match = \"uid\" can only filter tcp and udp")
            protos = protos or ("tcp", "udp")
        head = f"{rule.action} out{' log' if rule.log else ''} quick{self._on()}{_proto(protos)}"
        to = f" to {_list(rule.to) if rule.to else 'any'}{_ports(rule.port)}"
        tail = f"{self.user}{' keep state' if rule.action == 'pass' else ''} label \"{self.names.label}\""
        src = f" from <{self.names.table}>" if self.use_table else " from any"
        lines = [f"{head}{src}{to}{tail}"]
        if self.nat_tag:
            tagged = f" from any{to}{self.user} tagged {self.names.tag}"
            lines.append(f"{head}{tagged}{' keep state' if rule.action == 'pass' else ''} label \"{self.names.label}\"")
        return lines

    def _inbound(self, rule: Filter) -> list[str]:
        if not self.use_table:
            raise ValueError(f"jail {self.names.jail}: inbound rules need the jail's addresses (match = \"uid\")")
        peers = _list(rule.peers) if rule.peers else "any"
        state = " keep state" if rule.action == "pass" else ""
        return [f"{rule.action} in{' log' if rule.log else ''} quick{self._on()}{_proto(rule.proto)} "
                f"from {peers} to <{self.names.table}>{_ports(rule.port)}{state} label \"{self.names.label}\""]

    def _nat(self, rule: Nat) -> str:
        af = "inet" if rule.family == 4 else "inet6"
        return f"nat on {rule.interface} {af} from <{self.names.table}> to any tag {self.names.tag} -> {rule.target}"

    def render(self) -> str:
        s, n = self.spec, self.names
        out = [f"# jailhooks anchor \"{n.anchor}\" for jail {n.jail}: generated, do not edit"]
        if self.use_table:
            out.append(f"table <{n.table}> const {{ {' '.join(s.ip4 + s.ip6)} }}")
        for plugin, rules in s.contributions:
            nats = [r for r in rules if isinstance(r, Nat)]
            if nats:
                out.append(f"# translation from plugin {plugin}")
                out.extend(self._nat(r) for r in nats)
        for plugin, rules in s.contributions:
            filters = [r for r in rules if isinstance(r, Filter)]
            if filters:
                out.append(f"# rules from plugin {plugin}")
                for r in filters:
                    out.extend(self._outbound(r) if r.direction == "out" else self._inbound(r))
        if s.default == "block":
            out.append("# block everything else the jail sends")
            out.extend(self._default_block())
        return "\n".join(out) + "\n"

    def _default_block(self) -> list[str]:
        """Blocks that hold whatever UID the jail's processes run as."""
        head = f"block out{' log' if self.spec.log_blocked else ''} quick{self._on()}"
        label = f" label \"{self.names.label}\""
        lines = []
        if self.use_table:  # any UID, jailed root included
            lines.append(f"{head} from <{self.names.table}> to any{label}")
        if self.user:  # pf ignores user for other protocols: name tcp/udp
            lines.append(f"{head} proto {{ tcp udp }} from any to any{self.user}{label}")
        if self.nat_tag:
            lines.append(f"{head} from any to any tagged {self.names.tag}{label}")
        return lines


def render_anchor(spec: AnchorSpec) -> str:
    """The anchor text; raises ValueError when the policy cannot be expressed."""
    return Renderer(spec).render()
