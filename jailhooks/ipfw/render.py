"""A jail's policy as ipfw(8) rules in its own range of rule numbers.

Who is who: ipfw resolves ``jail NAME`` to a JID when a rule is added, and a
jail has a new JID at every start, so the policy comes in two forms:

* **jailed** (from ``exec.created`` on: the jail exists, nothing runs in it
  yet): TCP and UDP are matched by ``jail JID``, the prison of the socket
  (ip_fw2.c: ``cr_prison->pr_id``), whatever the jail's address and whatever
  UID sends: root, www and postfix 125 included, also in a jail that shares
  the host's address.  Other protocols (ICMP needs ``allow.raw_sockets``) are
  matched by the jail's addresses, when it has some;
* **held** (at prestart, and until ``created`` on managers without it): the
  same rules keyed on what exists before the jail, its addresses and its UID
  block (``lookup uid TABLE``: ``uid N`` takes only UIDs in the host's passwd),
  as pf matches them.

The rules come in the order the pf anchor has (jailhooks/pf/render.py), first
match deciding: ``check-state``; inbound blocks and passes; 1. blocks for the
jail's users; 2. blocks for the jail; 3. passes for the jail's users (then a
block of the rest they send); 4. passes for the jail; 5. the default block.

Numbers: a jail's range is ``[ipfw] first + slot * per_jail`` (slot: its UID
block's place in the pool), split in two halves; a reload fills the half not
in use and then deletes the other (plugins/ipfw.py), so there is never a
moment without the jail's rules.

NAT (saddr.nat, and port forwards) uses ipfw's in-kernel nat (libalias,
IPv4 only), with ``net.inet.ip.fw.one_pass=0`` (checked before loading: with
1, a packet leaves ipfw once nat has seen it, translated or not, so a nat
rule on the host's address would let in everything sent to it).  The jails
that leave with one address share one instance (SHARED: one link table, so
two jails never get the same alias port); a jail's port forwards are its own
instance, numbered as its range (its ``redirect_port`` links), which only
packets of the forwarded ports reach.  In the jail's half::

    nat FORWARDS proto from PEERS to ADDR PORT in recv IF   forwarded ports, to the jail
    nat SHARED ip from any to ADDR in recv IF               replies to what the jails sent
    check-state, the bands as above, with "skipto OUT" for "allow"
    skipto (after the range) ip from any to any             nothing else falls into OUT
    OUT: nat FORWARDS proto from JAIL LPORT to any out xmit IF   replies of forwarded connections
         nat SHARED ip from JAIL to any out xmit IF              what the jail sends
         allow ip from any to any                                (only after a pass, and its nat)

A VNET jail's packets are filtered as they enter the host and translated
as they leave it: its passes stay ``allow``, and a first rule sends what
leaves from its addresses to OUT.
"""
from __future__ import annotations

import hashlib
import re
from typing import Optional

from .. import validate
from ..policy import Filter, Policy

KEYS_PER_LINE = 250  # "100000 0 " each: a table line stays far below the 4095 characters ipfw reads


class Slots:
    """The rule numbers of one jail: FIRST..LAST, in halves of HALF."""

    __slots__ = ("first", "last", "half")

    def __init__(self, first: int, per_jail: int) -> None:
        self.first, self.last, self.half = first, first + per_jail - 1, per_jail // 2

    @classmethod
    def of(cls, jail: str, lease, ipfw: dict, pool_first: int, unit: int) -> "Slots":
        """The slot of a jail whose UID block starts at lease.uid_first: its
        offset in the pool in units of the smallest block any jail has (UID
        blocks are disjoint, so no two jails share a slot)."""
        if lease is None:
            raise ValueError(f"jail {jail}: the ipfw backend numbers a jail's rules by its lease (UID block); "
                             "it has none")
        slot = (lease.uid_first - pool_first) // unit
        slots = cls(ipfw["first"] + slot * ipfw["per_jail"], ipfw["per_jail"])
        if slot < 0 or slots.last > 65534:
            raise ValueError(f"jail {jail}: its UID block {lease.uid_first}-{lease.uid_last} puts its ipfw rules at "
                             f"{slots.first}-{slots.last}, past 65534 (lower [ipfw] first or per_jail)")
        return slots

    def halves(self, h: int) -> tuple[int, int]:
        low = self.first + h * self.half
        return low, low + self.half - 1


def table_name(jail: str, h: int) -> str:
    """The number table of the jail's UID block for half H: ipfw table names
    are letters, digits, "-", "_" and "." up to 63 (tables.c table_check_name);
    a name that does not fit is shortened with a hash, injectively."""
    base = f"jh_{jail}"
    if not re.fullmatch(r"[A-Za-z0-9_.-]{1,58}", base):
        digest = hashlib.sha256(jail.encode()).hexdigest()[:12]
        base = "jh_" + re.sub(r"[^A-Za-z0-9_.-]", "_", jail)[:40] + "-" + digest
    return f"{base}_u{h}"


class Rendered:
    """The rules of one half: ``rules`` [(number, body)], ``table`` (name,
    UIDs) or None, ``nats`` (the nat instances its rules use, as ``nat N
    config ...`` commands), ``text`` (commented, what ``render`` prints and
    jailhooks keeps)."""

    __slots__ = ("rules", "table", "text", "jid", "span", "nats")

    def __init__(self, rules: list[tuple[int, str]], table: Optional[tuple[str, list[int]]], text: str,
                 jid: Optional[int], span: tuple[int, int], nats: Optional[list[str]] = None) -> None:
        self.rules, self.table, self.text, self.jid, self.span = rules, table, text, jid, span
        self.nats = nats or []

    def forwards(self) -> Optional[int]:
        """The number of the jail's own nat instance (its port forwards), if it has one."""
        return next((int(line.split()[1]) for line in self.nats if " redirect_port " in line), None)

    @classmethod
    def from_text(cls, text: str) -> Optional["Rendered"]:
        """What TEXT (a kept rendering) says, or None if it is not one."""
        head = text.split("\n", 1)[0]
        found = re.match(r'# jailhooks ipfw rules of jail "[^"]*": (\d+)-(\d+)(?: \(jid (\d+)\))?', head)
        if not found:
            return None
        rules, table, nats = [], None, []
        for line in text.splitlines():
            words = line.split(" ", 2)
            if words[0] == "add" and len(words) == 3 and words[1].isdigit():
                rules.append((int(words[1]), words[2]))
            if words[0] == "nat" and len(words) == 3 and words[1].isdigit() and words[2].startswith("config "):
                nats.append(line)
            kept = re.match(r"table (\S+): (\d+)-(\d+) \(type number\)$", line)
            if kept:
                table = (kept.group(1), list(range(int(kept.group(2)), int(kept.group(3)) + 1)))
        jid = int(found.group(3)) if found.group(3) else None
        return cls(rules, table, text, jid, (int(found.group(1)), int(found.group(2))), nats)

    def script(self, configured: Optional[dict[int, str]] = None) -> list[str]:
        """The ipfw commands that put this half in place (the caller deletes
        the other half after them): leftovers of the half first, then the
        nat instances CONFIGURED ({number: config line}, as ``ipfw nat show
        config`` prints them) does not already hold as they are (a reconfig
        unhooks the instance for a moment: ip_fw_nat.c nat44_config)."""
        low, high = self.span
        out = [f"delete {low}-{high}"]
        for line in self.nats:
            if (configured or {}).get(int(line.split()[1])) != f"ipfw {line}":
                out.append(line)
        if self.table is not None:
            name, uids = self.table
            out += [f"table {name} destroy", f"table {name} create type number"]
            keys = [f"{uid} 0" for uid in uids]
            for i in range(0, len(keys), KEYS_PER_LINE):
                out.append(f"table {name} add {' '.join(keys[i:i + KEYS_PER_LINE])}")
        return out + [f"add {number} {body}" for number, body in self.rules]


def _same_family(proto: str, *addresses: str) -> bool:
    """Can one packet of PROTO have these addresses ("any" fits every family)?"""
    families = {6 if ":" in a else 4 for a in addresses if a != "any"}
    families |= {4} if proto == "icmp" else {6} if proto == "ipv6-icmp" else set()
    return len(families) <= 1


def _ports(ports: tuple[str, ...]) -> str:
    return ",".join(p.replace(":", "-") for p in ports)


class Translation:
    """A NAT'ed jail's nat instances and rules (see the module's text)."""

    def __init__(self, policy: Policy, slots: Slots, shared: Optional[int]) -> None:
        p = policy
        if len(p.nats) > 1 or p.nats[0][1].family != 4:
            raise ValueError(f"jail {p.jail}: under ipfw a jail's NAT is one IPv4 address: ipfw's in-kernel nat "
                             "(libalias) translates IPv4 only")
        if not p.ip4:
            raise ValueError(f"jail {p.jail}: it has no IPv4 address of its own to translate")
        if shared is None:
            raise ValueError(f"jail {p.jail}: no nat instance number for its NAT address")
        nat = p.nats[0][1]
        self.shared, self.target, self.iface, self.inside = shared, nat.target, nat.interface, p.ip4
        self.forwards = slots.first
        # (plugin, proto, public port, local address, local port, peers)
        self.redirects = [(plugin, proto, int(fwd.port), p.ip4[0], int(fwd.to_port), fwd.peers)
                          for plugin, fwd in p.rdrs for proto in fwd.proto]

    def configs(self) -> list[str]:
        out = [f"nat {self.shared} config ip {self.target}"]
        if self.redirects:
            out.append(f"nat {self.forwards} config ip {self.target}" + "".join(
                f" redirect_port {proto} {laddr}:{lport} {pport}" for _, proto, pport, laddr, lport, _ in
                self.redirects))
        return out

    def inbound(self) -> list[tuple[str, str]]:
        """What comes in translated first: forwarded ports (only from their
        peers: the others reach the host's own port, as with pf's rdr), then
        replies to what the jails sent."""
        rules = [(plugin, f"nat {self.forwards} {proto} from {','.join(peers) or 'any'} to {self.target} {pport} "
                          f"in recv {self.iface}") for plugin, proto, pport, _, _, peers in self.redirects]
        return rules + [("", f"nat {self.shared} ip from any to {self.target} in recv {self.iface}")]

    def outbound(self, end: int) -> list[tuple[str, str]]:
        """The rules OUT starts with, after the guard that keeps the rest out."""
        rules = [("", f"skipto {end} ip from any to any")]
        rules += [(plugin, f"nat {self.forwards} {proto} from {laddr} {lport} to any out xmit {self.iface}")
                  for plugin, proto, _, laddr, lport, _ in self.redirects]
        rules += [("", f"nat {self.shared} ip from {a} to any out xmit {self.iface}") for a in self.inside]
        return rules + [("", "allow ip from any to any")]


OUT = "skipto @OUT"  # the passes of a NAT'ed jail, until the number of OUT is known
# to syslog whatever net.inet.ip.fw.verbose says (15.1's ip_fw_log.c: else, with verbose 0, to the ipfw0
# interface): syslogd writes it to /var/log/security, which `jailhooks log` reads (ipfw/syslog.py)
LOG = " log logdst syslog"


class Renderer:
    def __init__(self, policy: Policy, slots: Slots, half: int, jid: Optional[int],
                 shared: Optional[int] = None) -> None:
        self.p, self.slots, self.half, self.jid = policy, slots, half, jid
        self.created = jid  # the JID the jail had when these rules were made (the kept text says it)
        self.nat = Translation(policy, slots, shared) if policy.nats else None
        # what a pass does: allow, or (a NAT'ed jail's sockets) go to OUT and its nat
        self.allow = OUT if self.nat is not None and not policy.vnet else "allow"
        self.table = table_name(policy.jail, half) if policy.users is not None else None
        self.lookup = f" lookup uid {self.table}" if self.table else ""
        if policy.vnet:
            self.jid = None  # its packets enter the host from its own stack: no socket, by address
        self.notes: list[str] = []

    # the jail's sources: (what to write after "from", extra options, protos it covers)
    def _whos(self, rule: Filter) -> list[tuple[str, str]]:
        """(source, options) pairs that together select the jail's packets
        for RULE, whatever protocol it has."""
        p = self.p
        users = rule.users or p.match == "both" and rule.action == "pass"
        lookup = self.lookup if users else ""
        whos = []
        if self.jid is not None:  # jailed: the prison of the socket (TCP and UDP)
            whos.append(("any", f" jail {self.jid}{lookup}"))
            if p.addresses and not rule.users and (not rule.proto or set(rule.proto) - {"tcp", "udp"}):
                whos += [(a, lookup) for a in p.addresses]  # other protocols, by the jail's addresses
        elif p.match == "uid" or rule.users:
            whos.append(("any", self.lookup))
        else:
            whos += [(a, lookup) for a in p.addresses]
        return whos

    def _way(self, direction: str) -> str:
        if self.p.vnet:
            return " in"  # the jail's packets, as they enter the host
        iface = self.p.interface
        if not iface:
            return f" {direction}"
        return f" {direction} {'xmit' if direction == 'out' else 'recv'} {iface}"

    def _outbound(self, rule: Filter) -> list[str]:
        action = self.allow if rule.action == "pass" else "deny"
        log = LOG if rule.log else ""
        state = " keep-state" if rule.action == "pass" else ""
        protos = rule.proto or (("tcp", "udp") if rule.port else ("ip",))
        lines = []
        for src, options in self._whos(rule):
            by_socket = " jail " in f"{options} " or "lookup" in options
            for proto in protos:
                if by_socket and proto not in ("tcp", "udp", "ip"):
                    continue  # jail and uid match TCP and UDP only; the addresses cover the rest
                if not by_socket and self.jid is not None and proto in ("tcp", "udp"):
                    continue  # TCP and UDP of a created jail: by its prison, above
                for dst in rule.to or ("any",):
                    if dst.startswith("<"):
                        raise ValueError(f"jail {self.p.jail}: {dst} is a pf table: the ipfw backend takes "
                                         "addresses and networks")
                    if not _same_family(proto, src, dst):
                        continue
                    ports = f" {_ports(rule.port)}" if rule.port and proto in ("tcp", "udp") else ""
                    lines.append(f"{action}{log} {proto} from {src} to {dst}{ports}{self._way('out')}"
                                 f"{options}{state}")
        if not lines:
            self.notes.append(f"# not expressible for this jail (no address of its own): {_describe(rule)}")
        return lines

    def _inbound(self, rule: Filter) -> list[str]:
        if not self.p.addresses:
            raise ValueError(f"jail {self.p.jail}: inbound rules need the jail's addresses")
        action = "allow" if rule.action == "pass" else "deny"
        state = " keep-state" if rule.action == "pass" else ""
        lines = []
        for proto in rule.proto or ("ip",):
            for peer in rule.peers or ("any",):
                for address in self.p.addresses:
                    if not _same_family(proto, peer, address):
                        continue
                    ports = f" {_ports(rule.port)}" if rule.port and proto in ("tcp", "udp") else ""
                    lines.append(f"{action}{LOG if rule.log else ''} {proto} from {peer} to {address}{ports}"
                                 f"{self._way('in')}{state}")
        return lines

    def _default_block(self, passing: bool = False) -> list[str]:
        """What the jail sends that no rule decided: blocked; in learn mode
        passed and logged; PASSING (a NAT'ed jail whose default is pass): passed,
        through its translation, as pf's nat translates all it sends."""
        learn = self.p.learn  # a logged allow, with state, in place of the deny
        action, state = (self.allow, " keep-state") if learn or passing else ("deny", "")
        log = LOG if not passing and (self.p.log_blocked or learn) else ""
        way = self._way("out")
        lines = []
        head = f"{action}{log}"  # log right after the action and its argument
        if self.jid is not None:
            lines.append(f"{head} ip from any to any{way} jail {self.jid}{state}")
        if self.p.match in ("address", "both") or self.jid is not None or self.p.vnet:
            lines += [f"{head} ip from {a} to any{way}{state}" for a in self.p.addresses]
        if self.table and not self.p.vnet:
            lines.append(f"{head} ip from any to any{way}{self.lookup}{state}")
        return lines

    def _forwarded(self) -> list[tuple[str, str]]:
        """The passes of what the forwards bring in (the jail's address and
        local port, as nat translated them), with state: their replies go
        out through OUT, where the forwards' instance translates them back."""
        if self.nat is None:
            return []
        return [(plugin, f"{self.allow} {proto} from {','.join(peers) or 'any'} to {laddr} {lport} in recv "
                         f"{self.nat.iface} keep-state")
                for plugin, proto, _, laddr, lport, peers in self.nat.redirects]

    def render(self) -> Rendered:
        p = self.p
        sections: list[tuple[str, list[tuple[str, str]]]] = []
        if self.nat is not None:
            first = self.nat.inbound()
            if p.vnet:  # what leaves the host from its addresses: filtered as it came in, translated now
                first += [("", f"{OUT} ip from {a} to any out xmit {self.nat.iface}") for a in self.nat.inside]
            sections.append(("translation: what comes in, before anything else", first))
        sections.append(("check-state", [("", "check-state")]))
        sections.append(("inbound blocks", [(pl, line) for pl, r in p.inbound("block") for line in self._inbound(r)]))
        sections.append(("inbound passes", [(pl, line) for pl, r in p.inbound("pass") for line in self._inbound(r)]
                         + self._forwarded()))
        for title, rules in p.bands():
            sections.append((title, [(pl, line) for pl, r in rules for line in self._outbound(r)]))
        if p.default == "block":
            title = "5. learn: pass and log everything else the jail sends" if p.learn else \
                "5. block everything else the jail sends"
            sections.append((title, [("", line) for line in self._default_block()]))
        elif self.nat is not None and not p.vnet:
            sections.append(("5. pass everything else the jail sends, translated",
                             [("", line) for line in self._default_block(passing=True)]))
        if self.nat is not None:
            sections.append(("translation: what the jail sends, after a pass (nothing else reaches it)",
                             self.nat.outbound(self.slots.last + 1)))
        low, high = self.slots.halves(self.half)
        count = sum(len(lines) for _, lines in sections)
        if count > high - low + 1:
            raise ValueError(f"jail {p.jail}: its policy needs {count} ipfw rules, more than the {high - low + 1} "
                             f"of half its range (raise [ipfw] per_jail, now {2 * self.slots.half})")
        identity = (f"jail {self.jid} (its prison: any address, any UID)" if self.jid is not None else
                    "its addresses" if p.match != "uid" and not p.vnet else "its UID block" if not p.vnet else
                    "its addresses (VNET: as its packets enter the host)")
        out = [f'# jailhooks ipfw rules of jail "{p.jail}": {low}-{high}'
               + (f" (jid {self.created})" if self.created is not None else " (held: before exec.created)"),
               f"# the jail is known by {identity}"
               + (f"; its users are UIDs {p.users[0]}-{p.users[1]} (table {self.table})" if self.table else ""),
               "# the first rule that matches decides"]
        rules: list[tuple[int, str]] = []
        number = low
        numbered = [body for _, lines in sections for _, body in lines]
        if self.nat is not None:  # OUT: right after the guard (the first rule of the last section)
            out_rule = low + len(numbered) - len(sections[-1][1]) + 1
            numbered = [body.replace(OUT, f"skipto {out_rule}") for body in numbered]
        bodies = iter(numbered)
        for title, lines in sections:
            if not lines:
                continue
            out.append(f"# {title}")
            origin = None
            for plugin, _ in lines:
                body = next(bodies)
                if plugin and plugin != origin:
                    out.append(f"# from plugin {validate.shown(plugin)}")
                origin = plugin
                out.append(f"add {number} {body}")
                rules.append((number, body))
                number += 1
        out += self.notes
        table = (self.table, list(range(p.users[0], p.users[1] + 1))) if self.table else None
        nats = self.nat.configs() if self.nat is not None else []
        head = ([f"table {self.table}: {p.users[0]}-{p.users[1]} (type number)"] if table else []) + nats
        out[3:3] = head
        return Rendered(rules, table, "\n".join(out) + "\n", self.created, (low, high), nats)


def _describe(rule: Filter) -> str:
    protos = "/".join(rule.proto) or "any proto"
    return f"{rule.action} {protos} to {', '.join(rule.to) or 'any'}" + (f" port {', '.join(rule.port)}"
                                                                        if rule.port else "")


def render(policy: Policy, slots: Slots, half: int, jid: Optional[int], shared: Optional[int] = None) -> Rendered:
    """POLICY as the rules of half HALF of SLOTS; JID None: held (before the
    jail exists); SHARED: the nat instance of its NAT address.  ValueError
    when the policy cannot be expressed."""
    return Renderer(policy, slots, half, jid, shared).render()
