"""Enforced, not just loaded: does pf do with a jail's packets what its policy says?

A loaded anchor proves nothing by itself: the main ruleset may not call it,
an earlier ``quick`` rule or ``set skip`` may decide first, another jail's
anchor (in strcmp order before this one) may match the same packets.  So:

* **probes** are packets derived from the jail's policy: one per outbound
  rule (as root and as one of the jail's users), per inbound rule and port
  forward (with its reply), and for the default block (a port no pass lists);
* each probe's **expected** verdict is what the jail's own rendered anchor
  does with it, alone behind the hooks of contrib/pf.conf (the policy tests
  check that this is what the config means);
* its **live** verdict is what pf's whole ruleset does with it, read back
  with ``pfctl -s Running`` (a disabled pf filters nothing), ``pfctl -a '*'
  -s rules`` and ``-s nat`` (every anchor, recursively), ``pfctl -v -s
  Interfaces`` (``set skip``) and the tables the rules name.

A probe whose live verdict differs, or cannot be evaluated (a construct the
evaluator does not model could decide), is a finding naming the rule that
decided.  Start fails closed on any finding; ``check`` and ``sync`` report them.
"""
from __future__ import annotations

import os
from typing import Any, Callable, Optional

from .evaluate import Ruleset, Verdict
from .listing import PrintedRule, parse_listing, parse_rule
from ..probes import Probe, probes
from .render import AnchorSpec
from .syntax import parse


class Finding:
    __slots__ = ("probe", "expected", "live", "leg", "before")

    def __init__(self, probe: Probe, expected: Verdict, live: Verdict, leg: str = "", before: str = "") -> None:
        self.probe, self.expected, self.live = probe, expected, live
        self.leg = leg  # "" or "reply"
        self.before = before  # the main ruleset's hook the deciding rule comes before

    @property
    def fails_open(self) -> bool:
        """Could pf let through what the policy blocks?  A definite
        difference always counts; "not proven" counts where the policy
        blocks (a pass that might be blocked is a warning, not a fail-open)."""
        return not self.live.unproven or not self.expected.passed

    def __str__(self) -> str:
        leg = " (its reply)" if self.leg else ""
        if self.live.unproven:
            return f"{self.probe.what}{leg}: not proven: {self.live.unproven}"
        before = f" (before {self.before})" if self.before else ""
        return (f"{self.probe.what}{leg}: pf would {self.live.action} it, the policy says "
                f"{self.expected.action}; decided by {self.live.decided_by()}{before}")


# -- the expected verdicts: the jail's anchor alone behind the hooks ---------------------------------

def alone(anchor: str, text: str) -> Ruleset:
    """Ruleset of a main ruleset that only calls ANCHOR (holding TEXT)."""
    rs = parse(text, in_anchor=True)
    parent = anchor.rsplit("/", 1)[0]

    def hook(kind: str, lines: list[str]) -> PrintedRule:
        rule = parse_rule(f'{kind} "{parent}/*" all')
        rule.children = [(anchor, [parse_rule(line, anchor) for line in lines])]
        return rule

    nat = rs.lines("nat")
    return Ruleset(filter=[hook("anchor", rs.lines("filter"))], nat=[hook("nat-anchor", nat), hook("rdr-anchor", nat)],
                   tables=lambda path, name: rs.tables.get(name) if path == anchor else None,
                   jail_tables=parent + "/")


# -- the live verdicts ---------------------------------------------------------------------------------

def live(host: Any, kept: Callable[[str], Optional[str]] = lambda anchor: None, parent: str = "") -> Ruleset:
    """What pf holds now.  Tables are read when a rule needs them; a jail
    anchor's const table is taken from the text jailhooks loaded into it
    (KEPT(anchor)) when the anchor's live rules are exactly that text's:
    pfctl -f loads rules and table in one transaction, and a const table
    cannot be changed afterwards."""
    enabled = host.pf_running()  # loaded rules mean nothing while pf is disabled
    filter_rules = parse_listing(host.pf_show_all("rules"))
    nat_rules = parse_listing(host.pf_show_all("nat"))
    printed: dict[str, list[str]] = {}
    _collect(filter_rules, printed)
    _collect(nat_rules, printed)
    cache: dict[tuple[str, str], Optional[list]] = {}

    def tables(path: str, name: str) -> Optional[list]:
        key = (path, name)
        if key not in cache:
            cache[key] = _kept_table(kept(path), path, name, printed) if path else None
            if cache[key] is None:
                cache[key] = host.pf_table(path, name)
        return cache[key]

    return Ruleset(filter=filter_rules, nat=nat_rules, skip=set(host.pf_skipped()), tables=tables,
                   jail_tables=parent + "/" if parent else "", enabled=enabled)


def _collect(rules: list[PrintedRule], printed: dict[str, list[str]]) -> None:
    for r in rules:
        for path, inner in r.children:
            lines = printed.setdefault(path, [])
            for line in (i.text for i in inner if not i.children and i.text not in lines):
                lines.append(line)
            _collect(inner, printed)


def _kept_table(text: Optional[str], path: str, name: str, printed: dict[str, list[str]]) -> Optional[list]:
    if text is None:
        return None
    try:
        rs = parse(text, in_anchor=True)
    except Exception:
        return None
    if name not in rs.tables or "const" not in next(
            (line for line in text.splitlines() if line.startswith(f"table <{name}>")), ""):
        return None
    want = rs.lines("filter") + [line for line in rs.lines("nat")]
    if sorted(set(want)) != sorted(set(printed.get(path, []))):
        return None  # the anchor holds something else than what was loaded
    return list(rs.tables[name])


def prove(spec: AnchorSpec, text: str, ruleset: Ruleset) -> list[Finding]:
    """Every probe of SPEC whose verdict on RULESET is not the one its
    anchor TEXT gives alone."""
    expected_rs = alone(spec.names.anchor, text)
    findings = []
    for probe in probes(spec):
        expected_rs.states.clear()  # each probe is a new connection, and its reply
        ruleset.states.clear()
        expected = expected_rs.test(probe.packet)
        got = ruleset.test(probe.packet)
        if got.unproven or got.action != expected.action:
            findings.append(Finding(probe, expected, got, before=_hook_after(ruleset, got, spec.names.anchor)))
            continue
        if probe.reply is not None and expected.passed:
            want, seen = expected_rs.test(probe.reply), ruleset.test(probe.reply)
            if seen.unproven or seen.action != want.action:
                findings.append(Finding(probe, want, seen, "reply"))
    return findings


def _hook_after(ruleset: Ruleset, verdict: Verdict, anchor: str) -> str:
    """The main ruleset's call of ANCHOR that comes after the deciding rule, if any."""
    rules = ruleset.nat if verdict.rule is not None and verdict.rule.kind in ("nat", "rdr") else ruleset.filter
    if verdict.rule is None or verdict.rule.path or verdict.rule not in rules:
        return ""
    for r in rules[rules.index(verdict.rule) + 1:]:
        if r.call and any(path == anchor for path, _ in r.children):
            return f'{r.kind} "{r.call}"'
    return ""


def kept_reader(settings: Any) -> Callable[[str], Optional[str]]:
    """KEPT for live(): the text jailhooks last loaded into a jail anchor
    under [pf] parent (STATE_DIR/anchors/COMPONENT.conf), else None."""
    from .. import jailfs

    parent = settings.section("pf")["parent"]
    directory = os.path.join(settings.state_dir, "anchors")

    def kept(anchor: str) -> Optional[str]:
        head, _, component = anchor.rpartition("/")
        if head != parent or not component or not os.path.isdir(directory):
            return None
        try:
            return jailfs.read_text(directory, f"{component}.conf")
        except (OSError, ValueError):
            return None

    return kept
