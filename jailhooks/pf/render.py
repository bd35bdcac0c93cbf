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
from ..policy import Filter, Nat, Policy



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


class AnchorSpec(Policy):
    """A jail's policy with its pf names: what its anchor is rendered from
    (``text`` once rendered).  MATCH is resolved (see policy.resolve_match)."""

    def __init__(self, names: Names, ip4: tuple[str, ...] = (), ip6: tuple[str, ...] = (),
                 uid_range: tuple[int, int] | None = None, match: str = "address", interface: str | None = None,
                 default: str = "block", log_blocked: bool = True,
                 contributions: tuple[tuple[str, tuple], ...] = (), vnet: bool = False) -> None:
        super().__init__(names.jail, ip4, ip6, uid_range, match, interface, default, log_blocked, contributions, vnet)
        self.names = names
        self.text = ""  # the rendered anchor, once rendered

    @classmethod
    def of(cls, policy: Policy, names: Names) -> "AnchorSpec":
        """POLICY (already checked) under its pf NAMES."""
        spec = cls.__new__(cls)
        spec.__dict__.update(policy.__dict__)
        spec.names, spec.text = names, ""
        return spec


def _list(items) -> str:
    items = tuple(items)
    return items[0] if len(items) == 1 else "{ " + " ".join(items) + " }"


def _ports(ports: tuple[str, ...]) -> str:
    return f" port {_list(ports)}" if ports else ""


def _proto(protos: tuple[str, ...]) -> str:
    return f" proto {_list(protos)}" if protos else ""


class Renderer:
    def __init__(self, spec: AnchorSpec):
        self.spec = spec
        n = self.names = spec.names
        self.addresses = spec.addresses
        self.user = ""
        if spec.users is not None:
            first, last = spec.users
            # pf has no inclusive range for users: FIRST-1 >< LAST+1 (pf.conf(5)).
            self.user = f" user {first - 1} >< {last + 1}"
        self.filters, self.nats, self.rdrs = spec.filters, spec.nats, spec.rdrs
        self.tagged = bool(self.nats) and not spec.vnet
        self.src = f" from <{n.table}>" if spec.match in ("address", "both") else " from any"

    # -- pieces ---------------------------------------------------------------------
    def _label(self, logged: bool = False) -> str:
        """The jail's label; on a logging rule also its ridentifier (the first
        UID of its block: unique per jail, kept across restarts), which pflog
        records carry in full where the anchor's name is cut to 15 bytes."""
        rid = f" ridentifier {self.spec.uid_range[0]}" if logged and self.spec.uid_range else ""
        return f' label "{self.names.label}"{rid}'

    def _log(self, logged: bool) -> str:
        """(user): the socket's uid in each pflog record; a VNET jail's packets
        reach the host with no socket here."""
        return "" if not logged else " log" if self.spec.vnet else " log (user)"

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
        log = self._log(rule.log)
        to = f" to {_list(rule.to) if rule.to else 'any'}{_ports(rule.port)}"
        if self.spec.vnet:  # the jail's packets entering the host
            return [f"{rule.action} in{log} quick{_proto(protos)} from <{self.names.table}>{to}{state}"
                    f"{self._label(rule.log)}"]
        head = f"{rule.action} out{log} quick{self._on()}{_proto(protos)}"
        lines = [f"{head}{self.src}{to}{user}{state}{self._label(rule.log)}"]
        if self.tagged:
            lines.append(f"{head} from any{to}{user} tagged {self.names.tag}{state}{self._label(rule.log)}")
        return lines

    def _inbound(self, rule: Filter) -> str:
        if self.spec.match == "uid":
            raise ValueError(f"jail {self.names.jail}: inbound rules need the jail's addresses (match = \"uid\")")
        peers = _list(rule.peers) if rule.peers else "any"
        state = " keep state" if rule.action == "pass" else ""
        on = "" if self.spec.vnet else self._on()
        return (f"{rule.action} in{self._log(rule.log)} quick{on}{_proto(rule.proto)} "
                f"from {peers} to <{self.names.table}>{_ports(rule.port)}{state}{self._label(rule.log)}")

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
        learn = self.spec.learn  # a logged pass, with state, in place of the block
        logged = self.spec.log_blocked or learn
        log, action, state = self._log(logged), "pass" if learn else "block", " keep state" if learn else ""
        n = self.names
        if self.spec.vnet:
            return [f"{action} in{log} quick from <{n.table}> to any{state}{self._label(logged)}"]
        head = f"{action} out{log} quick{self._on()}"
        lines = []
        if self.spec.match in ("address", "both"):  # any UID, jailed root included
            lines.append(f"{head} from <{n.table}> to any{state}{self._label(logged)}")
        if self.user:  # the block's users, wherever they send from; pf tests user on tcp/udp only
            lines.append(f"{head} proto {{ tcp udp }} from any to any{self.user}{state}{self._label(logged)}")
        if self.tagged:
            lines.append(f"{head} from any to any tagged {n.tag}{state}{self._label(logged)}")
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
        sections = [
            ("inbound blocks", [(p, self._inbound(r)) for p, r in s.inbound("block")]),
            ("inbound passes", [(p, self._inbound(r)) for p, r in s.inbound("pass")] + forwarded),
            *[(title, [(p, line) for p, r in rules for line in self._outbound(r)]) for title, rules in s.bands()],
            ("5. learn: pass and log everything else the jail sends" if s.learn else
             "5. block everything else the jail sends",
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


def render_anchor(spec: AnchorSpec) -> str:
    """The anchor text; raises ValueError when the policy cannot be expressed."""
    return Renderer(spec).render()
