"""The jail's pf anchor: loaded whole at prestart, flushed at poststop.

The main ruleset is never touched: pf.conf holds, once, the hooks
``nat-anchor "PARENT/*"``, ``rdr-anchor "PARENT/*"`` and ``anchor "PARENT/*"``
(see contrib/pf.conf), and each jail's rules live in ``PARENT/JAIL``.  The
anchor text is rendered from the policy in the config plus every plugin's
``jailhooks_pf_rules`` contributions, and loaded with one ``pfctl -a ANCHOR
-f -`` (an atomic replace of every rule class and the jail's table).
"""
from __future__ import annotations

import os

from .. import hookimpl, validate
from ..config import Field, Section, absolute_path
from ..errors import DataError, JailhooksError
from ..pf.anchor import anchor_of, names as anchor_names
from ..pf.render import Names
from ..policy import resolve_match


LOG_SECTION = Section("log", fields={
    "pflog": Field(absolute_path, "/var/log/pflog", "the file pflogd(8) writes (rotated copies beside it are read too)"),
    "interface": Field(validate.interface, "pflog0", "the pflog(4) interface pf logs to (log --follow reads it live)"),
})


@hookimpl
def jailhooks_config_sections():
    return [LOG_SECTION]


def names(ctx):
    return anchor_names(ctx.settings, ctx.jail.name)


def anchor(ctx, lease=None):
    """The jail's anchor: its policy (built by the core) under its pf names,
    rendered (``.text``)."""
    return anchor_of(ctx.policy(lease), ctx.settings)


@hookimpl
def jailhooks_render(ctx, policy):
    return anchor_of(policy, ctx.settings).text


class Expected:
    """What a loaded anchor must hold: the rules TEXT expands into, counted
    as pfctl lists them (one line per expanded rule), and its table."""

    def __init__(self, text: str) -> None:
        from ..pf.syntax import parse

        rs = parse(text, in_anchor=True)
        self.filter, self.nat, self.tables = len(rs.lines("filter")), len(rs.lines("nat")), sorted(rs.tables)


def inspect(host, anchor: str, text: str | None) -> tuple[bool, int]:
    """(complete, rules): does the anchor hold every rule TEXT loads (a flushed
    rule class or a lost table is not "loaded"), and how many rules it holds.
    Asked of the anchor itself, not by listing every anchor."""
    rules, nat = host.pf_rules(anchor, "rules"), host.pf_rules(anchor, "nat")
    count = len(rules) + len(nat)
    if text is None:
        return bool(count or host.pf_tables(anchor)), count
    want = Expected(text)
    tables = sorted(host.pf_tables(anchor)) if want.tables else []
    return (len(rules), len(nat), tables) == (want.filter, want.nat, want.tables), count


# The text last loaded into each jail's anchor, kept in the state directory:
# when a run on a jail that is already running fails after loading a new
# anchor, the undo puts this back instead of leaving the jail without rules.
def _kept(settings, jail: str) -> tuple[str, str]:
    return os.path.join(settings.state_dir, "anchors"), f"{validate.anchor_component(jail)}.conf"


def last_loaded(settings, jail: str) -> str | None:
    from .. import jailfs

    directory, name = _kept(settings, jail)
    return jailfs.read_text(directory, name) if os.path.isdir(directory) else None


def keep(ctx, text: str | None) -> None:
    """Keep TEXT as the jail's last loaded anchor (None: forget it).  The
    directory is jailhooks' own (0700), and the jail's lock is held, so one
    temporary name per jail does: no scan of a directory of 1,000 files."""
    from .. import jailfs

    if not ctx.dry_run:
        directory, name = _kept(ctx.settings, ctx.jail.name)
        jailfs.keep_state(directory, name, text)
        if ctx.host.recording is not None:  # a replayed start keeps its text too (plan.py)
            ctx.host.recording.steps.append(("keep_state", directory, name, text))


def load(ctx, anchor: str, text: str) -> None:
    ctx.host.pf_load(anchor, text)
    keep(ctx, text)


def _flush(ctx, anchor: str) -> None:
    """Take the jail's rules away, and the record of what was loaded."""
    ctx.host.pf_flush(anchor)
    keep(ctx, None)


def _live(ctx):
    from ..pf.prove import kept_reader, live

    return live(ctx.host, kept_reader(ctx.settings), ctx.settings.section("pf")["parent"])


def unenforced(ctx, spec, ruleset=None, text=None) -> tuple[list[str], list[str]]:
    """What pf, as it is now, does with the jail's probe packets against
    what its anchor TEXT (default: SPEC's) means alone (pf/prove.py):
    (failures, warnings), one line per probe.  A failure is a difference, or
    a block the live ruleset may not apply; a warning, a pass it may not."""
    from ..pf.prove import prove

    findings = prove(spec, spec.text if text is None else text, ruleset or _live(ctx))
    return [str(f) for f in findings if f.fails_open], [str(f) for f in findings if not f.fails_open]


def require_enforced(ctx, spec, text=None) -> None:
    """Fail the phase unless pf enforces, for the jail's packets, what its
    anchor TEXT (default: SPEC's) says; note what could not be proven."""
    if ctx.dry_run:
        return
    from ..probes import require

    require(ctx, *unenforced(ctx, spec, text=text), "its rules are loaded but pf does not enforce them")


def _loadable(ctx, text: str) -> None:
    """Refuse, before loading, an anchor that a later phase could not read
    back from the kept copy (jailfs reads at most MAX_FILE bytes)."""
    from .. import jailfs

    size = len(text.encode())
    if size > jailfs.MAX_FILE:
        raise DataError(f"jail {ctx.jail.name}: its anchor is {size} bytes, over the {jailfs.MAX_FILE} that "
                        "jailhooks keeps and reads back; nothing was loaded (fewer, broader rules, or tables)")


@hookimpl
def jailhooks_prestart(ctx):
    n = names(ctx)
    spec = anchor(ctx)
    text = spec.text
    _loadable(ctx, text)
    previous = last_loaded(ctx.settings, ctx.jail.name) if ctx.was_running else None
    load(ctx, n.anchor, text)
    ctx.this_run["pf.loaded"] = n.anchor  # pfctl -f is one transaction: it is all there now
    if ctx.was_running:  # a re-run on a running jail: it must keep its last good rules
        if previous is not None:
            ctx.on_undo(f"reload the previous anchor {n.anchor}", lambda: load(ctx, n.anchor, previous))
    else:
        ctx.on_undo(f"flush anchor {n.anchor}", lambda: _flush(ctx, n.anchor))
    require_enforced(ctx, spec)
    ctx.note(f"anchor {n.anchor} loaded and enforced ({sum(1 for l in text.splitlines() if l and not l.startswith(('#', 'table')))} rule lines)")


@hookimpl
def jailhooks_poststart(ctx):
    """Fail closed: the jail must not run without its anchor (someone may have
    flushed it, or pf may have been reloaded without the hooks, since prestart)."""
    n = names(ctx)
    if not ctx.was_running:
        # jail(8) removes the jail again if poststart fails (here or in a later
        # plugin): take the rules away too.  Registered first, so it also runs
        # when the check below cannot even ask pf.
        ctx.on_undo(f"flush anchor {n.anchor}", lambda: _flush(ctx, n.anchor))
    if ctx.this_run.get("pf.loaded") == n.anchor:
        return  # loaded moments ago by this run's prestart
    spec = anchor(ctx)
    expected = last_loaded(ctx.settings, ctx.jail.name) or spec.text
    if not ctx.dry_run and not inspect(ctx.host, n.anchor, expected)[0]:
        raise JailhooksError(f"anchor {n.anchor} does not hold the rules start loads; refusing to leave the jail "
                             "running without them (jailhooks sync reloads them)")
    # judged against what prestart loaded (the kept text), not a second answer from the plugins
    require_enforced(ctx, spec, expected)


def loaded_at(text: str | None) -> str | None:
    """The anchor a kept text was loaded into, from its first line
    (``# jailhooks anchor "PARENT/JAIL": generated ...``)."""
    head = (text or "").split("\n", 1)[0]
    prefix = '# jailhooks anchor "'
    if head.startswith(prefix) and '"' in head[len(prefix):]:
        return head[len(prefix):].split('"', 1)[0]
    return None


def _valid_anchor(path: str) -> bool:
    try:
        validate.anchor_path(path)
        return True
    except ValueError:  # a kept file that says something else: flush only where the config says
        return False


def _teardown(ctx):
    n = names(ctx)
    errors = []
    # [pf] parent may have changed since start: flush where the rules really are
    where = loaded_at(last_loaded(ctx.settings, ctx.jail.name))
    elsewhere = [where] if where and where != n.anchor and _valid_anchor(where) else []
    for step in (lambda: ctx.host.pf_flush(n.anchor), *[(lambda a=a: ctx.host.pf_flush(a)) for a in elsewhere],
                 lambda: ctx.host.pf_kill_label(n.label),
                 *[(lambda a=a: ctx.host.pf_kill_address(a)) for a in ctx.jail.addresses]):
        try:  # every step, whatever failed before: no rules or states may stay behind
            step()
        except JailhooksError as exc:
            errors.append(str(exc))
    if errors:
        raise JailhooksError("; ".join(errors))
    keep(ctx, None)
    ctx.note(f"anchor {n.anchor} flushed, states killed")


@hookimpl
def jailhooks_poststop(ctx):
    _teardown(ctx)


@hookimpl
def jailhooks_destroy(ctx):
    _teardown(ctx)


@hookimpl
def jailhooks_status(ctx):
    n = names(ctx)
    error = None
    try:
        wanted = anchor(ctx).text
    except DataError as exc:  # reported, and status exits 65; the other jails are still shown
        wanted, error = None, validate.escaped(str(exc))
    is_loaded, count = inspect(ctx.host, n.anchor, wanted)
    passed, blocked = [0, 0], [0, 0]
    per_rule = []
    if is_loaded and not ctx.dry_run:
        sections = sections_of(last_loaded(ctx.settings, ctx.jail.name) or wanted or "")
        for rule, packets, octets in ctx.host.pf_counters(n.anchor):
            total = passed if rule.startswith("pass") else blocked
            total[0] += packets
            total[1] += octets
            per_rule.append({"section": sections.get(rule), "rule": rule, "packets": packets, "bytes": octets})
    record = {"anchor": n.anchor, "anchor_loaded": is_loaded, "rules": count,
              "passed": {"packets": passed[0], "bytes": passed[1]},
              "blocked": {"packets": blocked[0], "bytes": blocked[1]}, "rule_counters": per_rule,
              "match": resolve_match(ctx.config("pf")["match"], bool(ctx.jail.addresses)), "vnet": ctx.jail.vnet}
    if error is not None:
        record["policy_error"] = error
    return record


@hookimpl
def jailhooks_columns(status):
    return [("ANCHOR", status.get("anchor", "-")), ("LOADED", "yes" if status.get("anchor_loaded") else "no"),
            ("RULES", str(status.get("rules", "-")))]  # the packets passed and blocked: the core adds them last


@hookimpl
def jailhooks_sync(ctx):
    from ..claims import claim_of

    n = names(ctx)
    claim = claim_of(ctx.jail.path)
    if ctx.lease is None and claim is not None and claim["jail"] == ctx.jail.name:
        # the registry lost the jail's lease while it runs: rendering now would
        # drop the rules for its users; keep what is loaded until it is recovered
        raise JailhooksError(f"jail {ctx.jail.name}: its etc/pw.conf says UIDs {claim['uid_first']}-"
                             f"{claim['uid_last']}, the registry has no lease: anchor {n.anchor} kept as loaded "
                             "(run `jailhooks registry recover`)")
    spec = anchor(ctx)
    _loadable(ctx, spec.text)
    load(ctx, n.anchor, spec.text)
    ctx.note(f"anchor {n.anchor} reloaded")  # sync proves every jail after the last reload (jailhooks_verify)


@hookimpl
def jailhooks_verify(ctx, seen):
    if "pf" not in seen:
        seen["pf"] = _live(ctx)
    ruleset = seen["pf"]
    problems, doubts = unenforced(ctx, anchor(ctx), ruleset)
    return [("error", line) for line in problems] + [("warning", line) for line in doubts]


def sections_of(text: str) -> dict[str, str]:
    """Each rule of a rendered anchor TEXT, as pfctl prints it, -> the
    section heading it comes under: each source line parsed once."""
    from ..pf.syntax import PfSyntaxError, parse

    found: dict[str, str] = {}
    section = ""
    tables = "\n".join(line for line in text.splitlines() if line.startswith("table"))
    for line in text.splitlines():
        if line.startswith("# ") and (line[2:3].isdigit() or line in ("# translation", "# inbound passes",
                                                                      "# inbound blocks")):
            section = line[2:]
        elif line and not line.startswith(("#", "table")):
            try:
                rs = parse(f"{tables}\n{line}\n", in_anchor=True)
            except PfSyntaxError:
                continue
            for printed in rs.lines("filter"):
                found.setdefault(printed, section)
    return found


def _section(text: str, printed: str) -> tuple[str, str]:
    """(section heading, plugin) of the rendered TEXT's rule that PRINTED
    (a line as pfctl prints it) comes from."""
    from ..pf.syntax import PfSyntaxError, parse

    section = plugin = ""
    tables = "\n".join(line for line in text.splitlines() if line.startswith("table"))
    for line in text.splitlines():
        if line.startswith("# from plugin "):
            plugin = line[len("# from plugin "):]
        elif line.startswith("# ") and line[2:3].isdigit() or line in ("# translation", "# inbound passes",
                                                                       "# inbound blocks"):
            section, plugin = line[2:], ""
        elif line and not line.startswith(("#", "table")):
            try:
                rs = parse(f"{tables}\n{line}\n", in_anchor=True)
            except PfSyntaxError:
                continue
            if printed in rs.lines("filter") + rs.lines("nat"):
                return section, plugin
    return "", ""


@hookimpl
def jailhooks_explain(ctx, packet, rendered):
    from ..pf.prove import alone
    from ..probes import Packet, egress

    spec = anchor(ctx)
    names_ = names(ctx)
    family = 6 if ":" in packet["dst"] else 4
    own = next((a for a in spec.ip4 + spec.ip6 if (":" in a) == (family == 6)), None)
    iface = packet["iface"] or egress(spec)
    if packet["direction"] == "out":
        src = own  # None: a jail without an address of its own sends from the host's
        pkt = Packet(None if spec.vnet else iface, "in" if spec.vnet else "out", packet["proto"], src,
                     packet["dst"], dport=packet["port"], uid=None if spec.vnet else packet["uid"])
    else:
        pkt = Packet(iface, "in", packet["proto"], packet["src"], packet["dst"], sport=50000, dport=packet["port"])
    ruleset = alone(names_.anchor, spec.text) if rendered else _live(ctx)
    v = ruleset.test(pkt)
    rule = v.rule
    section, plugin = _section(spec.text, rule.text) if rule is not None and rule.path == names_.anchor else ("", "")
    return {"verdict": v.action, "proven": not v.unproven, "why": v.decided_by(), "state": v.state,
            "rule": rule.text if rule is not None else None, "anchor": rule.path if rule is not None else None,
            "section": section, "plugin": plugin,
            "translation": v.translation.text if v.translation is not None else None,
            "packet": {"direction": pkt.direction, "proto": pkt.proto, "src": pkt.src, "dst": pkt.dst,
                       "port": pkt.dport, "uid": pkt.uid, "iface": pkt.iface},
            "seen_as": {"src": v.packet.src, "dst": v.packet.dst, "port": v.packet.dport} if v.packet else None,
            "ruleset": "rendered" if rendered else "live"}


@hookimpl
def jailhooks_cleanup(settings, host, running, dry_run):
    parent = settings.section("pf")["parent"]
    wanted = {Names.of(name, parent).anchor for name in running}
    removed = []
    for anchor in host.pf_anchors(parent) or []:
        if anchor not in wanted and anchor.count("/") == parent.count("/") + 1:
            host.pf_flush(anchor)
            removed.append(f"flushed orphan anchor {anchor}")
    return removed


@hookimpl
def jailhooks_check(settings, host, registry, jail):
    parent = settings.section("pf")["parent"]
    found = []
    try:
        running = host.pf_running()
    except JailhooksError as exc:
        return [("error", f"pf: {exc}")]
    where = " (simulated host)" if host.mode.startswith("simulated") else ""
    found.append(("ok", f"pf is enabled{where}") if running
                 else ("error", f"pf is not enabled{where} (pfctl -e; pf_enable=YES in rc.conf)"))
    wildcard = f'"{parent}/*"'
    filter_rules = host.pf_rules("", "rules")
    nat_rules = host.pf_rules("", "nat")
    for kind, rules in (("nat-anchor", nat_rules), ("rdr-anchor", nat_rules), ("anchor", filter_rules)):
        if any(r.startswith(f"{kind} {wildcard}") for r in rules):
            found.append(("ok", f"main ruleset has {kind} {wildcard}"))
        else:
            found.append(("error", f"main ruleset lacks {kind} {wildcard} (see contrib/pf.conf)"))
    if jail is not None:
        running = [jail.name] if jail.jid is not None else []
    else:
        running = [j["name"] for j in host.jails() if _valid_name(j["name"])]
    for name in running:  # every running jail must hold the rules start loaded for it
        anchor = Names.of(name, parent).anchor
        if not inspect(host, anchor, last_loaded(settings, name))[0]:
            found.append(("error", f"jail {name} runs without the rules of its anchor {anchor} (jailhooks sync)"))
    if jail is not None:
        found += accounts_outside(settings, registry, jail)
    return found


def _valid_name(name: str) -> bool:
    try:
        validate.jail_name(name)
        return True
    except ValueError:
        return False


MEANING = {
    "address": ("ok", "the jail's rules (pf.allow/block) apply to them, its users' rules (pf.users) do not"),
    "both": ("warning", "match = \"both\" passes only the block's UIDs: these can send nothing the default "
                        "block holds (match = \"address\" lets the jail's rules apply to them)"),
    "uid": ("warning", "match = \"uid\" cannot see them: whatever they send passes unfiltered by this jail's "
                       "rules (give the jail an address of its own)"),
}


def accounts_outside(settings, registry, jail) -> list[tuple[str, str]]:
    """The jail's accounts outside its UID block (root, www, package users
    such as postfix 125), and what the match mode does with their traffic."""
    from .. import jailfs

    lease = registry.get(jail.name)
    if lease is None or not jail.path:
        return []
    match = resolve_match(settings.for_jail("pf", jail.name)["match"], bool(jail.addresses))
    if jail.vnet:
        return [("ok", f"jail {jail.name} is a VNET jail: pf sees its packets as they enter the host, "
                       "by address, with no UID")]
    outside = [(uid, validate.shown(name, 32)) for name, uid in jailfs.accounts(jail.path, "etc/passwd")
               if not lease.uid_first <= uid <= lease.uid_last]
    if not outside:
        return []
    level, meaning = MEANING[match]
    names = ", ".join(f"{name} ({uid})" for uid, name in sorted(outside))
    return [(level, f"jail {jail.name}: {len(outside)} account(s) outside its UID block "
                    f"{lease.uid_first}-{lease.uid_last}: {names}; {meaning}")]


# -- what the rules logged ----------------------------------------------------------------------------

@hookimpl
def jailhooks_firewall_log(settings, host, registry, since):
    from ..logfiles import of_host, open_log
    from ..pf import pflog

    attribute = Attribution(settings, host, registry)
    out = []
    # the simulated host's pflogd writes STATE_DIR/simhost/pflog
    for path in of_host(settings, host, settings.section("log")["pflog"], LOG_SECTION.fields["pflog"].default,
                        "pflog"):
        try:
            with open_log(path) as fh:
                records = list(pflog.read(fh, path))
        except (OSError, EOFError, ValueError) as exc:
            raise DataError(f"{path}: {exc}") from None
        out += [attribute(r) for r in records if since is None or r.time >= since]
    return out


@hookimpl
def jailhooks_firewall_follow(settings, host, registry):
    from ..pf import pflog

    interface = settings.section("log")["interface"]
    followed = host.pflog_follow(interface)
    try:
        form = pflog.header(followed, f"tcpdump on {interface}")
        if form is None:
            raise DataError(f"tcpdump on {interface} ended before it wrote a pcap header")
    except BaseException:
        followed.close()
        raise
    return Following(followed, form, Attribution(settings, host, registry, live=True), interface)


class Following:
    """The records pf logs from now on, attributed, until closed."""

    def __init__(self, followed, form, attribute, what: str):
        self.followed, self.form, self.attribute, self.what = followed, form, attribute, what  # what: pflog0

    def __iter__(self):
        from ..pf import pflog

        for r in pflog.records(self.followed, *self.form):
            yield self.attribute(r)

    def close(self) -> None:
        self.followed.close()


class Attribution:
    """A pflog record as ``jailhooks log`` shows it: the jail by the rule's
    ridentifier (in full; the record's ruleset is cut to 15 bytes), the user
    by the jail's own passwd, and the rule and its section from the anchor
    text last loaded.  LIVE: jails start and reload while it runs, so a new
    ridentifier reads the registry again (once: a rule that is no jail's, the
    admin's own, is not looked up at each packet) and the rules are read each
    time."""

    def __init__(self, settings, host, registry, live: bool = False):
        self.settings, self.host, self.registry, self.live = settings, host, registry, live
        self.missed: set = set()  # ridentifiers that were no jail's when last looked up
        self.by_rid: dict = {}
        self.paths: dict = {}
        self.users: dict = {}
        self.rules: dict = {}
        self._jails()

    def _jails(self) -> None:
        self.by_rid = {lease.uid_first: lease.jail for lease in self.registry.leases()}
        self.paths = {j["name"]: j["path"] for j in self.host.jails()}
        self.paths.update({name: jc.path for name, jc in self.settings.jails.items()
                           if jc.path and name not in self.paths})

    def __call__(self, r) -> dict:
        import datetime

        from .. import jailfs
        from ..pf import pflog

        if self.live and r.ridentifier not in self.by_rid and r.ridentifier not in self.missed:
            self._jails()
            self.users.clear()
            if r.ridentifier not in self.by_rid:
                self.missed.add(r.ridentifier)
        jail = self.by_rid.get(r.ridentifier)
        uid = None if r.uid == pflog.NO_UID else r.uid
        if jail is not None and jail not in self.users:
            root = self.paths.get(jail)
            self.users[jail] = {u: n for n, u in jailfs.accounts(root, "etc/passwd")} if root else {}
        user = "unknown" if uid is None else (self.users.get(jail, {}).get(uid) or ("root" if uid == 0 else str(uid)))
        text = section = None
        if jail is not None:
            kept, lines = self._rules(jail)
            if 0 <= r.subrulenr < len(lines):
                text = lines[r.subrulenr]
                section = _section(kept, text)[0] or None
        when = datetime.datetime.fromtimestamp(r.time, datetime.timezone.utc).isoformat(timespec="microseconds")
        return {"time": when, "jail": jail, "uid": uid, "user": validate.shown(user, 32),
                "verdict": r.action, "direction": r.dir, "proto": r.proto, "src": r.src, "dst": r.dst,
                "port": r.dport, "interface": validate.shown(r.ifname, 16),
                "ruleset": validate.shown(r.ruleset, 16), "rule": text, "section": section}

    def _rules(self, jail: str) -> tuple:
        from ..pf.syntax import parse

        if self.live or jail not in self.rules:
            kept = last_loaded(self.settings, jail)
            try:
                self.rules[jail] = (kept, parse(kept, in_anchor=True).lines("filter")) if kept else (None, [])
            except Exception:
                self.rules[jail] = (None, [])
        return self.rules[jail]
