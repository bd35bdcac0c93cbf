"""The package's pf evaluator (jailhooks.pf.evaluate) over pf.conf texts.

Firewall(main_text, {anchor: text}) loads the texts the way the simulated
pfctl does, prints them the way ``pfctl -a '*' -s rules|nat`` does, and
evaluates packets over that printed form: the same path ``jailhooks`` takes
on a live host.  Verdict.rule is "state", "set skip", "" (no rule matched)
or "ANCHOR:RULE TEXT" ("main:..." for the main ruleset).
"""
from __future__ import annotations

from dataclasses import dataclass, field

from jailhooks.pf import evaluate
from jailhooks.pf.evaluate import Packet
from jailhooks.pf.listing import listing, parse_listing
from jailhooks.pf.syntax import parse

__all__ = ["Firewall", "Packet", "Verdict"]


@dataclass
class Verdict:
    action: str
    rule: str
    packet: Packet | None
    state: bool
    unproven: str = ""

    @property
    def passed(self) -> bool:
        return self.action == "pass"


@dataclass
class Firewall:
    main_text: str
    anchors: dict[str, str] = field(default_factory=dict)
    interfaces: dict[str, list] = field(default_factory=dict)  # name -> addresses, primary first

    def __post_init__(self) -> None:
        main = parse(self.main_text, in_anchor=False)
        parsed = {name: parse(text, in_anchor=True) for name, text in self.anchors.items()}

        def tables(path: str, name: str):
            rs = parsed.get(path) if path else main
            return rs.tables.get(name) if rs is not None else None

        self.ruleset = evaluate.Ruleset(
            filter=parse_listing(listing(main.lines("filter"), {a: rs.lines("filter") for a, rs in parsed.items()},
                                         "rules")),
            nat=parse_listing(listing(main.lines("nat"), {a: rs.lines("nat") for a, rs in parsed.items()}, "nat")),
            skip=set(main.skip), tables=tables, interfaces=self.interfaces)

    @property
    def states(self) -> list:
        return self.ruleset.states

    def test(self, pkt: Packet) -> Verdict:
        v = self.ruleset.test(pkt)
        if v.rule is not None:
            rule = f"{v.rule.path or 'main'}:{v.rule.text}"
        else:
            rule = {"state": "state", "default": ""}.get(v.why, "set skip" if v.why.startswith("set skip") else v.why)
        return Verdict(v.action, rule, v.packet, v.state, v.unproven)
