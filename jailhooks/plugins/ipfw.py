"""The jail's ipfw rules (``[firewall] backend = "ipfw"``): held at prestart,
jailed from ``created`` on, deleted at poststop.

Each jail owns the rule numbers of its slot (jailhooks/ipfw/render.py), in
two halves.  A (re)load writes the half not in use, then deletes the other,
in one ``ipfw -q /dev/stdin``: while the new half is being added, the old
one is complete, so every packet of the jail gets the old rules' verdict or
the new rules' (the new half after the old: unreachable until the old is
deleted in one IP_FW_XDEL; the new half before the old: each rule added in
order, the first to match is the new rules' own first match).  A command
that fails stops the script before the old half is deleted; the new half is
then deleted again.  The text last loaded is kept in STATE_DIR/ipfw/.

NAT (jailhooks/ipfw/render.py): the jails that leave with one address share
a nat instance, numbered down from ``[ipfw] first`` - 1 and found again by
its configuration (``ipfw nat show config``), under a host lock so that two
jails starting at once agree on it; a jail's port forwards are an instance
of its own, numbered as its range, deleted with its rules; ``sync``
deletes a shared instance no rule uses any more.  Loading needs
``net.inet.ip.fw.one_pass=0``.
"""
from __future__ import annotations

import os
from typing import Optional

from .. import hookimpl, validate
from ..config import Field, Section, absolute_path, integer
from ..errors import ConfigError, DataError, JailhooksError

SHARED_SPAN = 64  # the shared nat instances: [ipfw] first - 1 down to first - SHARED_SPAN

SECTION = Section("ipfw", fields={
    "first": Field(integer(1, 65000), 10000, "the first rule number of the jails' ranges"),
    "per_jail": Field(integer(8, 10000), 100, "rule numbers per jail (two halves: a reload fills the other)"),
    "log": Field(absolute_path, "/var/log/security",
                 "where syslogd(8) writes what ipfw logs (jailhooks log reads it and its rotated copies)"),
})


@hookimpl
def jailhooks_config_sections():
    return [SECTION]


# -- names, kept text ---------------------------------------------------------------------------------

def _slots(ctx, lease=None):
    from ..ipfw.render import Slots

    uids = ctx.settings.section("uids")
    unit = min([uids["block"]] + [jc.sections["uids"]["block"] for jc in ctx.settings.jails.values()
                                  if jc.sections.get("uids", {}).get("block")])
    try:
        return Slots.of(ctx.jail.name, lease or ctx.lease, ctx.config("ipfw"), uids["first"], unit)
    except ValueError as exc:
        raise DataError(str(exc)) from None


def _kept_path(settings, jail: str) -> tuple[str, str]:
    return os.path.join(settings.state_dir, "ipfw"), f"{validate.anchor_component(jail)}.rules"


def kept(settings, jail: str):
    from .. import jailfs
    from ..ipfw.render import Rendered

    directory, name = _kept_path(settings, jail)
    text = jailfs.read_text(directory, name) if os.path.isdir(directory) else None
    return Rendered.from_text(text) if text else None


def _keep(ctx, text: Optional[str]) -> None:
    from .. import jailfs

    if not ctx.dry_run:
        jailfs.keep_state(*_kept_path(ctx.settings, ctx.jail.name), text)


# -- load, prove, remove ------------------------------------------------------------------------------

def _render(ctx, jid: Optional[int], half: int, lease=None, shared: Optional[int] = None):
    from ..ipfw.render import render

    policy = ctx.policy(lease)
    if policy.nats and shared is None:
        shared = shared_instance(ctx.settings, ctx.host, policy.nats[0][1].target)[0]
    try:
        return render(policy, _slots(ctx, lease), half, jid, shared)
    except ValueError as exc:
        raise DataError(str(exc)) from None


def shared_instance(settings, host, target: str) -> tuple[int, dict[int, str]]:
    """The nat instance the jails that leave with TARGET share: the one
    configured as ``ip TARGET`` alone in jailhooks' numbers, else the
    highest free one there; and what ``ipfw nat show config`` shows now."""
    first = settings.section("ipfw")["first"]
    configured = host.ipfw_nat()
    mine = range(first - 1, max(first - 1 - SHARED_SPAN, 0), -1)
    for number in mine:
        if configured.get(number) == f"ipfw nat {number} config ip {target}":
            return number, configured
    for number in mine:
        if number not in configured:
            return number, configured
    raise DataError(f"no free nat instance number for {target} in {max(first - SHARED_SPAN, 1)}-{first - 1} "
                    "(the shared instances jailhooks numbers below [ipfw] first)")


def _nat_lock(settings, dry_run: bool):
    """Held while a shared nat instance is found and configured, or deleted."""
    from contextlib import nullcontext

    from .. import jailfs

    if dry_run:
        return nullcontext()
    # "+" is in no jail's name: the jails' own locks beside it are NAME.lock
    return jailfs.locked(os.path.join(settings.state_dir, "locks"), "ipfw+nat.lock",
                         settings.host["lock_timeout"], "another jailhooks run is configuring ipfw's nat")


def require_one_pass(ctx) -> None:
    """A NAT'ed jail needs net.inet.ip.fw.one_pass=0 (see render.py)."""
    from ..ipfw.prove import one_pass_of

    if one_pass_of(ctx.host) is not False:
        raise ConfigError(f"jail {ctx.jail.name}: its NAT under ipfw needs net.inet.ip.fw.one_pass=0 (it is "
                          f"{ctx.host.sysctl('net.inet.ip.fw.one_pass') or 'not there: is ipfw loaded?'}): with 1, "
                          "ipfw lets a packet through once nat has seen it, so the jails' nat rule on their "
                          "address would let in everything sent to it; set it in /etc/sysctl.conf; nothing was "
                          "loaded")


def live_numbers(host) -> set[int]:
    """The numbers of the rules ipfw holds (``ipfw list``)."""
    from ..ipfw.rules import parse_listing

    return {rule.number for rule in parse_listing(host.ipfw_list())}


def _half_in_use(ctx, slots) -> Optional[int]:
    """The half that holds the jail's rules now: ipfw's own list, else the
    kept text.  Rules in the range that jailhooks did not load for this jail
    (another jail's, whose slot overlaps, or the admin's) stop the load."""
    numbers = live_numbers(ctx.host)
    before = kept(ctx.settings, ctx.jail.name)
    mine = {n for n, _ in before.rules} if before is not None else set()
    foreign = sorted(n for n in numbers if slots.first <= n <= slots.last and n not in mine)
    if foreign:
        raise DataError(f"jail {ctx.jail.name}: ipfw rule {foreign[0]} is in its range {slots.first}-{slots.last} "
                        "but jailhooks did not load it for this jail (another jail's or the admin's); nothing "
                        "was loaded ([ipfw] first and per_jail place the jails' ranges)")
    used = [h for h in (0, 1) if any(slots.halves(h)[0] <= n <= slots.halves(h)[1] for n in numbers)]
    if len(used) == 1:
        return used[0]
    if before is not None and before.span in (slots.halves(0), slots.halves(1)):
        return 0 if before.span == slots.halves(0) else 1
    return used[0] if used else None


def load(ctx, jid: Optional[int]):
    """Render and load the jail's rules into the half not in use, then delete
    the other half; on failure, delete the new half again.  Returns them."""
    from contextlib import nullcontext

    slots = _slots(ctx)
    old = _half_in_use(ctx, slots)
    half = 1 if old == 0 else 0
    policy = ctx.policy()
    if policy.nats:
        require_one_pass(ctx)
    with _nat_lock(ctx.settings, ctx.dry_run) if policy.nats else nullcontext():
        shared, configured = shared_instance(ctx.settings, ctx.host, policy.nats[0][1].target) if policy.nats \
            else (None, {})
        rendered = _render(ctx, jid, half, shared=shared)
        other_low, other_high = slots.halves(1 - half)
        other = [f"delete {other_low}-{other_high}"]
        if rendered.table is not None:
            from ..ipfw.render import table_name

            other.append(f"table {table_name(ctx.jail.name, 1 - half)} destroy")
        before = kept(ctx.settings, ctx.jail.name)
        if before is not None and before.forwards() is not None and rendered.forwards() is None:
            other.append(f"nat {before.forwards()} delete")  # its forwards are gone from the policy
        try:
            ctx.host.ipfw_script(rendered.script(configured) + other)
        except JailhooksError:
            _remove_half(ctx, rendered)
            raise
    _keep(ctx, rendered.text)
    return rendered


def _remove_half(ctx, rendered) -> None:
    low, high = rendered.span
    lines = [f"delete {low}-{high}"] + ([f"table {rendered.table[0]} destroy"] if rendered.table else [])
    try:
        ctx.host.ipfw_script(lines)
    except JailhooksError:
        pass  # reported by the failure that called this; teardown and sync remove it too


def _reload_text(ctx, text: str) -> None:
    """Put a kept rendering back in its half and delete the other half, which
    holds the rules that failed (undo of a failed re-run on a running jail)."""
    from ..ipfw.render import Rendered, table_name

    rendered = Rendered.from_text(text)
    if rendered is None:
        return
    slots = _slots(ctx)
    other = 1 if rendered.span == slots.halves(0) else 0
    low, high = slots.halves(other)
    ctx.host.ipfw_script(rendered.script() + [f"delete {low}-{high}",
                                              f"table {table_name(ctx.jail.name, other)} destroy"])
    _keep(ctx, text)


def remove(ctx) -> None:
    """Every rule of the jail's range and both its tables."""
    from ..ipfw.render import table_name

    lines = []
    try:
        slots = _slots(ctx)
        lines.append(f"delete {slots.first}-{slots.last}")
    except DataError:
        pass
    before = kept(ctx.settings, ctx.jail.name)
    if before is not None:
        lines.append(f"delete {before.span[0]}-{before.span[1]}")  # where it was loaded, whatever the lease says
    lines += [f"table {table_name(ctx.jail.name, h)} destroy" for h in (0, 1)]
    if before is not None and before.forwards() is not None:
        lines.append(f"nat {before.forwards()} delete")  # its own; the shared instance stays (sync deletes it)
    ctx.host.ipfw_script(lines)
    _keep(ctx, None)


def findings(ctx, rendered, jid: Optional[int], ruleset=None) -> tuple[list[str], list[str]]:
    from ..ipfw.prove import live, prove

    ruleset = ruleset or live(ctx.host)
    found = prove(ctx.policy(), rendered, ruleset, jid)
    problems = [str(f) for f in found if f.fails_open]
    if rendered.nats and ruleset.enabled and ruleset.one_pass is not False:
        problems.insert(0, "net.inet.ip.fw.one_pass is not 0: its nat rules let through whatever they see, "
                           "translated or not (everything sent to its NAT address)")
    return problems, [str(f) for f in found if not f.fails_open]


def require_enforced(ctx, rendered, jid: Optional[int]) -> None:
    if ctx.dry_run:
        return
    from ..probes import require

    require(ctx, *findings(ctx, rendered, jid), "its ipfw rules are loaded but not enforced")


def _up(ctx, jid: Optional[int], what: str) -> None:
    if "ipfw.loaded" in ctx.this_run and ctx.this_run["ipfw.loaded"] == jid:
        return  # run start on a running jail: prestart loaded the jailed rules already
    previous = kept(ctx.settings, ctx.jail.name) if ctx.was_running else None
    rendered = load(ctx, jid)
    ctx.this_run["ipfw.loaded"] = jid
    if ctx.was_running and previous is not None:
        ctx.on_undo("reload the previous ipfw rules", lambda: _reload_text(ctx, previous.text))
    elif not ctx.was_running:
        ctx.on_undo(f"delete the ipfw rules of jail {ctx.jail.name}", lambda: remove(ctx))
    require_enforced(ctx, rendered, jid)
    low, high = rendered.span
    ctx.note(f"{what} rules {low}-{high} loaded and enforced ({len(rendered.rules)} rules)")


@hookimpl
def jailhooks_prestart(ctx):
    # before the jail exists: keyed on its addresses and UID block
    _up(ctx, ctx.jail.jid if ctx.was_running else None, "jailed" if ctx.was_running else "held")


@hookimpl
def jailhooks_created(ctx):
    if ctx.jail.jid is None:
        if "ipfw.loaded" in ctx.this_run:
            return  # run start by hand on a jail that is not running: it stays held until it is made
        raise JailhooksError(f"jail {ctx.jail.name} is not running: created runs once jail(8) has made it "
                             "(exec.created)")
    _up(ctx, ctx.jail.jid, "jailed")


@hookimpl
def jailhooks_poststart(ctx):
    if not ctx.was_running:
        ctx.on_undo(f"delete the ipfw rules of jail {ctx.jail.name}", lambda: remove(ctx))
    jid = ctx.jail.jid
    if jid is None or ctx.this_run.get("ipfw.loaded") == jid:
        return
    before = kept(ctx.settings, ctx.jail.name)
    if before is not None and before.jid == jid:
        require_enforced(ctx, before, jid)  # loaded at created, by jail(8)'s exec.created
        return
    # a manager without exec.created: its daemons ran under the held rules until now
    rendered = load(ctx, jid)
    require_enforced(ctx, rendered, jid)
    ctx.note(f"jailed rules {rendered.span[0]}-{rendered.span[1]} loaded at poststart (no exec.created: "
             "until now the jail was held by its addresses and UID block)")


@hookimpl
def jailhooks_poststop(ctx):
    remove(ctx)
    ctx.note("ipfw rules deleted")


@hookimpl
def jailhooks_destroy(ctx):
    remove(ctx)


@hookimpl
def jailhooks_sync(ctx):
    rendered = load(ctx, ctx.jail.jid)
    ctx.note(f"rules {rendered.span[0]}-{rendered.span[1]} reloaded")


@hookimpl
def jailhooks_verify(ctx, seen):
    from ..ipfw.prove import live

    if "ipfw" not in seen:
        seen["ipfw"] = live(ctx.host)
    before = kept(ctx.settings, ctx.jail.name)
    rendered = before if before is not None and before.jid == ctx.jail.jid else _render(ctx, ctx.jail.jid, 0)
    problems, doubts = findings(ctx, rendered, ctx.jail.jid, seen["ipfw"])
    return [("error", line) for line in problems] + [("warning", line) for line in doubts]


@hookimpl
def jailhooks_render(ctx, policy):
    from ..ipfw.render import Slots, render

    shared = None
    if policy.nats:
        try:
            shared = shared_instance(ctx.settings, ctx.host, policy.nats[0][1].target)[0]
        except JailhooksError:  # ipfw's nat cannot be read (ipfw_nat.ko not loaded): the number a start would try
            shared = ctx.config("ipfw")["first"] - 1
    try:
        slots = _slots(ctx) if ctx.lease is not None else Slots(ctx.config("ipfw")["first"],
                                                                 ctx.config("ipfw")["per_jail"])
        held = render(policy, slots, 0, None, shared).text
        jailed = render(policy, slots, 1, ctx.jail.jid if ctx.jail.jid is not None else 0, shared).text
    except ValueError as exc:
        raise DataError(str(exc)) from None
    where = "" if ctx.lease is not None else "# (no lease yet: numbered as the first slot)\n"
    jid = "" if ctx.jail.jid is not None else "# (jail 0 stands for the JID the jail gets at each start)\n"
    return f"{where}# until exec.created:\n{held}\n# from exec.created on:\n{jid}{jailed}"


@hookimpl
def jailhooks_status(ctx):
    before = kept(ctx.settings, ctx.jail.name)
    shown = ctx.host.ipfw_counters()
    live_numbers = {number for number, _, _, _ in shown}
    loaded = before is not None and all(n in live_numbers for n, _ in before.rules)
    count = 0 if before is None else sum(1 for n, _ in before.rules if n in live_numbers)
    passed, blocked = [0, 0], [0, 0]
    mine = {n for n, _ in before.rules} if before is not None else set()
    sections = _sections(before.text) if before is not None else {}
    per_rule = []
    for number, packets, octets, body in shown:  # the counters of the jail's own rules
        if number not in mine:
            continue
        per_rule.append({"section": sections.get(number), "rule": f"{number:05d} {body}", "packets": packets,
                         "bytes": octets})
        if body.split()[0] in ("allow", "deny"):
            total = passed if body.startswith("allow") else blocked
            total[0] += packets
            total[1] += octets
    return {"ipfw_rules": f"{before.span[0]}-{before.span[1]}" if before else None, "rules_loaded": loaded,
            "rules": count, "jailed": before is not None and before.jid is not None,
            "passed": {"packets": passed[0], "bytes": passed[1]},
            "blocked": {"packets": blocked[0], "bytes": blocked[1]}, "rule_counters": per_rule}


def _sections(text: str) -> dict[int, str]:
    """Rule number -> the section heading of a kept rendering."""
    found, section = {}, ""
    for line in text.splitlines():
        if line.startswith("# ") and not line.startswith(("# from plugin", "# jailhooks ipfw", "# the ")):
            section = line[2:]
        elif line.startswith("add "):
            number = line.split()[1]
            if number.isdigit():
                found[int(number)] = section
    return found


@hookimpl
def jailhooks_columns(status):
    return [("IPFW", status.get("ipfw_rules") or "-"), ("LOADED", "yes" if status.get("rules_loaded") else "no"),
            ("RULES", str(status.get("rules", "-")))]


@hookimpl
def jailhooks_explain(ctx, packet, rendered):
    from ..ipfw.prove import alone, live
    from ..probes import Packet, egress

    policy = ctx.policy()
    jid = ctx.jail.jid
    own = next((a for a in policy.addresses if (":" in a) == (":" in packet["dst"])), None)
    iface = packet["iface"] or egress(policy)  # as the probes take it: the policy's, else its NAT's
    if packet["direction"] == "out":
        pkt = Packet(iface, "out", packet["proto"], own, packet["dst"], dport=packet["port"], uid=packet["uid"])
    else:
        pkt = Packet(iface, "in", packet["proto"], packet["src"], packet["dst"], sport=50000, dport=packet["port"])
    before = kept(ctx.settings, ctx.jail.name)
    ruleset = alone(_render(ctx, jid, 0)) if rendered or before is None else live(ctx.host)
    socket = jid if pkt.proto in ("tcp", "udp") and not policy.vnet else None
    v = ruleset.test(pkt, socket)
    translation = seen = None
    if v.translated is not None:
        rule, after = v.translated
        translation = f"rule {rule.number:05d} {rule.text}"
        seen = {"src": after.src, "dst": after.dst, "port": after.dport}
    return {"verdict": v.action, "proven": not v.unproven, "why": v.decided_by(), "state": v.state,
            "rule": v.rule.text if v.rule is not None else None, "anchor": None, "section": "", "plugin": "",
            "number": v.rule.number if v.rule is not None else None,
            "translation": translation,
            "logged": [{"number": r.number, "rule": r.text, "action": r.logged_as} for r in v.logged],
            "packet": {"direction": pkt.direction, "proto": pkt.proto, "src": pkt.src, "dst": pkt.dst,
                       "port": pkt.dport, "uid": pkt.uid, "iface": pkt.iface},
            "seen_as": seen, "ruleset": "rendered" if rendered or before is None else "live"}


@hookimpl
def jailhooks_cleanup(settings, host, running, dry_run):
    """Delete the rules of jails that no longer run (their kept text says where)."""
    from .. import jailfs
    from ..ipfw.render import Rendered

    directory = os.path.join(settings.state_dir, "ipfw")
    if not os.path.isdir(directory):
        return []
    wanted = {f"{validate.anchor_component(name)}.rules" for name in running}
    removed = []
    for name in sorted(os.listdir(directory)):
        if not name.endswith(".rules") or name in wanted:
            continue
        text = jailfs.read_text(directory, name)
        rendered = Rendered.from_text(text) if text else None
        if rendered is not None and not dry_run:
            host.ipfw_script([f"delete {rendered.span[0]}-{rendered.span[1]}"]
                             + ([f"table {rendered.table[0]} destroy"] if rendered.table else [])
                             + ([f"nat {rendered.forwards()} delete"] if rendered.forwards() is not None else []))
            os.unlink(os.path.join(directory, name))
            removed.append(f"deleted the ipfw rules {rendered.span[0]}-{rendered.span[1]} of a jail that is gone")
    return removed + _unused_shared(settings, host, dry_run)


def _unused_shared(settings, host, dry_run: bool) -> list[str]:
    """Delete the shared nat instances (jailhooks' numbers, ``ip ADDR``
    alone) that no rule uses any more: the last NAT'ed jail on an address
    stops without deleting it, since another may be starting."""
    from ..ipfw.rules import parse_listing

    first = settings.section("ipfw")["first"]
    if not host.ipfw_enabled():
        return []
    with _nat_lock(settings, dry_run):
        configured = host.ipfw_nat()
        used = {rule.arg for rule in parse_listing(host.ipfw_list()) if rule.action == "nat"} if configured else set()
        unused = [n for n, line in configured.items() if first - SHARED_SPAN <= n < first and n not in used
                  and len(line.split()) == 6 and line.split()[4] == "ip"]
        if unused and not dry_run:
            host.ipfw_script([f"nat {n} delete" for n in unused])
    return [f"deleted the shared nat instance {n}, which no jail uses" for n in unused]


@hookimpl
def jailhooks_check(settings, host, registry, jail):
    where = " (simulated host)" if host.mode.startswith("simulated") else ""
    try:
        enabled = host.ipfw_enabled()
    except JailhooksError as exc:
        return [("error", f"ipfw: {exc}")]
    found = [("ok", f"ipfw is enabled{where}") if enabled
             else ("error", f"ipfw is not enabled{where} (kldload ipfw; firewall_enable=YES in rc.conf)")]
    if not enabled:
        return found  # no rule list to read: every running jail is unfiltered, which the line above says
    running = [jail.name] if jail is not None and jail.jid is not None else [] if jail is not None else \
        [j["name"] for j in host.jails()]
    numbers = live_numbers(host)
    for name in running:
        try:
            before = kept(settings, name)
        except ValueError:
            continue
        if before is None or not all(n in numbers for n, _ in before.rules):
            found.append(("error", f"jail {name} runs without its ipfw rules (jailhooks sync)"))
    return found


# -- what the rules logged ----------------------------------------------------------------------------

def _owners(settings) -> dict[int, tuple[str, Optional[str], Optional[str]]]:
    """Rule number -> (jail, rule, section) for every number of each jail's
    range (from the renderings kept); rule and section only for the rules
    loaded now."""
    import re

    from .. import jailfs
    from ..ipfw.render import Rendered

    directory = os.path.join(settings.state_dir, "ipfw")
    first, per_jail = settings.section("ipfw")["first"], settings.section("ipfw")["per_jail"]
    owners: dict = {}
    for name in sorted(os.listdir(directory)) if os.path.isdir(directory) else []:
        text = jailfs.read_text(directory, name) if name.endswith(".rules") else None
        rendered = Rendered.from_text(text) if text else None
        jail = re.match(r'# jailhooks ipfw rules of jail "([^"]*)"', text or "")
        if rendered is None or jail is None:
            continue
        start = first + (rendered.span[0] - first) // per_jail * per_jail  # the range, both halves
        for number in range(start, start + per_jail):
            owners[number] = (jail.group(1), None, None)
        sections = _sections(text)
        for number, body in rendered.rules:
            owners[number] = (jail.group(1), body, sections.get(number))
    return owners


@hookimpl
def jailhooks_firewall_log(settings, host, registry, since):
    """What the jails' rules logged (``log logdst syslog``: one line per
    packet in the security log), attributed by rule number to the jail whose
    range holds it.  The log has no UIDs: the user is "unknown"."""
    import datetime

    from ..ipfw.syslog import parse
    from ..logfiles import of_host, open_log

    owners = _owners(settings)
    now = datetime.datetime.now()
    out = []
    for path in of_host(settings, host, *_log_keys(settings)):
        try:
            with open_log(path) as fh:
                lines = fh.read().decode("utf-8", "replace").splitlines()
        except (OSError, EOFError, ValueError) as exc:
            raise DataError(f"{path}: {exc}") from None
        for line in lines:
            e = parse(line, now)
            if e is not None and (since is None or e.time >= since):
                out.append(_record(e, owners))
    return out


def _log_keys(settings) -> tuple[str, str, str]:
    """The security log's key, its default, and the simulated syslogd's file."""
    return settings.section("ipfw")["log"], SECTION.fields["log"].default, "security"


def _record(e, owners: dict) -> dict:
    """A line of the security log as ``jailhooks log`` shows it."""
    import datetime

    jail, rule, section = owners.get(e.rule, (None, None, None))
    when = datetime.datetime.fromtimestamp(e.time, datetime.timezone.utc).isoformat(timespec="microseconds")
    return {"time": when, "jail": jail, "uid": None, "user": "unknown", "verdict": e.verdict,
            "direction": e.direction, "proto": e.proto, "src": e.src, "dst": e.dst, "port": e.dport,
            "interface": validate.shown(e.iface, 16), "ruleset": f"rule {e.rule}",
            "rule": f"{e.rule:05d} {rule}" if rule else None, "section": section}


@hookimpl
def jailhooks_firewall_follow(settings, host, registry):
    from ..logfiles import on_host

    path = on_host(settings, host, *_log_keys(settings))
    return FollowingLog(host.log_follow(path), settings, path)


class FollowingLog:
    """The security log's lines from now on (``tail -F``), attributed; the
    jails' renderings are read again when a rule number is no jail's (a jail
    started or reloaded), once per number."""

    def __init__(self, followed, settings, what: str):
        self.followed, self.settings, self.what = followed, settings, what  # what: the file it follows
        self.owners, self.missed = _owners(settings), set()

    def __iter__(self):
        from ..ipfw.syslog import parse

        while True:
            line = self.followed.readline()
            if not line:
                return
            e = parse(line.decode("utf-8", "replace"))
            if e is None:
                continue
            if e.rule not in self.owners and e.rule not in self.missed:
                self.owners = _owners(self.settings)
                if e.rule not in self.owners:
                    self.missed.add(e.rule)
            yield _record(e, self.owners)

    def close(self) -> None:
        self.followed.close()
