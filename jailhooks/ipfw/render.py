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
    UIDs) or None, ``text`` (commented, what ``render`` prints and jailhooks
    keeps)."""

    __slots__ = ("rules", "table", "text", "jid", "span")

    def __init__(self, rules: list[tuple[int, str]], table: Optional[tuple[str, list[int]]], text: str,
                 jid: Optional[int], span: tuple[int, int]) -> None:
        self.rules, self.table, self.text, self.jid, self.span = rules, table, text, jid, span

    @classmethod
    def from_text(cls, text: str) -> Optional["Rendered"]:
        """What TEXT (a kept rendering) says, or None if it is not one."""
        head = text.split("\n", 1)[0]
        found = re.match(r'# jailhooks ipfw rules of jail "[^"]*": (\d+)-(\d+)(?: \(jid (\d+)\))?', head)
        if not found:
            return None
        rules, table = [], None
        for line in text.splitlines():
            words = line.split(" ", 2)
            if words[0] == "add" and len(words) == 3 and words[1].isdigit():
                rules.append((int(words[1]), words[2]))
            kept = re.match(r"table (\S+): (\d+)-(\d+) \(type number\)$", line)
            if kept:
                table = (kept.group(1), list(range(int(kept.group(2)), int(kept.group(3)) + 1)))
        jid = int(found.group(3)) if found.group(3) else None
        return cls(rules, table, text, jid, (int(found.group(1)), int(found.group(2))))

    def script(self) -> list[str]:
        """The ipfw commands that put this half in place (the caller deletes
        the other half after them): leftovers of the half first."""
        low, high = self.span
        out = [f"delete {low}-{high}"]
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


class Renderer:
    def __init__(self, policy: Policy, slots: Slots, half: int, jid: Optional[int]) -> None:
        self.p, self.slots, self.half, self.jid = policy, slots, half, jid
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
        action = "allow" if rule.action == "pass" else "deny"
        log = " log" if rule.log else ""
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
                    lines.append(f"{action}{' log' if rule.log else ''} {proto} from {peer} to {address}{ports}"
                                 f"{self._way('in')}{state}")
        return lines

    def _default_block(self) -> list[str]:
        learn = self.p.learn  # a logged allow, with state, in place of the deny
        action, state = ("allow", " keep-state") if learn else ("deny", "")
        log = " log" if self.p.log_blocked or learn else ""
        way = self._way("out")
        lines = []
        if self.jid is not None:
            lines.append(f"{action}{log} ip from any to any{way} jail {self.jid}{state}")
        if self.p.match in ("address", "both") or self.jid is not None or self.p.vnet:
            lines += [f"{action}{log} ip from {a} to any{way}{state}" for a in self.p.addresses]
        if self.table and not self.p.vnet:
            lines.append(f"{action}{log} ip from any to any{way}{self.lookup}{state}")
        return lines

    def render(self) -> Rendered:
        p = self.p
        sections: list[tuple[str, list[tuple[str, str]]]] = [("check-state", [("", "check-state")])]
        if p.nats or p.rdrs:
            raise ValueError(f"jail {p.jail}: the ipfw backend does not translate addresses yet (saddr.nat, rdr): "
                             "use [firewall] backend = \"pf\" for this host, or drop the NAT")
        sections.append(("inbound blocks", [(pl, line) for pl, r in p.inbound("block") for line in self._inbound(r)]))
        sections.append(("inbound passes", [(pl, line) for pl, r in p.inbound("pass") for line in self._inbound(r)]))
        for title, rules in p.bands():
            sections.append((title, [(pl, line) for pl, r in rules for line in self._outbound(r)]))
        if p.default == "block":
            title = "5. learn: pass and log everything else the jail sends" if p.learn else \
                "5. block everything else the jail sends"
            sections.append((title, [("", line) for line in self._default_block()]))
        low, high = self.slots.halves(self.half)
        count = sum(len(lines) for _, lines in sections)
        if count > high - low + 1:
            raise ValueError(f"jail {p.jail}: its policy needs {count} ipfw rules, more than the {high - low + 1} "
                             f"of half its range (raise [ipfw] per_jail, now {2 * self.slots.half})")
        identity = (f"jail {self.jid} (its prison: any address, any UID)" if self.jid is not None else
                    "its addresses" if p.match != "uid" and not p.vnet else "its UID block" if not p.vnet else
                    "its addresses (VNET: as its packets enter the host)")
        out = [f'# jailhooks ipfw rules of jail "{p.jail}": {low}-{high}'
               + (f" (jid {self.jid})" if self.jid is not None else " (held: before exec.created)"),
               f"# the jail is known by {identity}"
               + (f"; its users are UIDs {p.users[0]}-{p.users[1]} (table {self.table})" if self.table else ""),
               "# the first rule that matches decides"]
        rules: list[tuple[int, str]] = []
        number = low
        for title, lines in sections:
            if not lines:
                continue
            out.append(f"# {title}")
            origin = None
            for plugin, body in lines:
                if plugin and plugin != origin:
                    out.append(f"# from plugin {validate.shown(plugin)}")
                origin = plugin
                out.append(f"add {number} {body}")
                rules.append((number, body))
                number += 1
        out += self.notes
        table = (self.table, list(range(p.users[0], p.users[1] + 1))) if self.table else None
        if table:
            out.insert(3, f"table {self.table}: {p.users[0]}-{p.users[1]} (type number)")
        return Rendered(rules, table, "\n".join(out) + "\n", self.jid, (low, high))


def _describe(rule: Filter) -> str:
    protos = "/".join(rule.proto) or "any proto"
    return f"{rule.action} {protos} to {', '.join(rule.to) or 'any'}" + (f" port {', '.join(rule.port)}"
                                                                        if rule.port else "")


def render(policy: Policy, slots: Slots, half: int, jid: Optional[int]) -> Rendered:
    """POLICY as the rules of half HALF of SLOTS; JID None: held (before the
    jail exists).  ValueError when the policy cannot be expressed."""
    return Renderer(policy, slots, half, jid).render()
