"""Anchor rendering: golden files (byte for byte), pf syntax, and injection."""
from __future__ import annotations

import os
from pathlib import Path

import pytest
from hypothesis import given, settings, strategies as st

from jailhooks import validate
from jailhooks.pf.syntax import parse
from jailhooks.pf.render import AnchorSpec, Names, render_anchor
from jailhooks.pf.rules import Filter, Nat, Rdr

GOLDEN = Path(__file__).parent / "golden"
WEB = Names.of("web", "jailhooks")
DNS = Filter(proto=("tcp", "udp"), to=("192.0.2.53", "2001:db8::53"), port=(53,))
HTTP = Filter(proto=("tcp",), port=(80, 443))

CASES = {
    "ipv4-address-only": AnchorSpec(WEB, ip4=("192.0.2.10",), match="address",
                                    contributions=(("pf", (DNS, HTTP)),)),
    "ipv6-with-uid-block": AnchorSpec(WEB, ip6=("2001:db8::10",), uid_range=(100000, 100999), match="both",
                                      contributions=(("pf", (HTTP,)),)),
    "dual-stack-several-addresses": AnchorSpec(
        WEB, ip4=("192.0.2.10", "192.0.2.11"), ip6=("2001:db8::10",), uid_range=(100000, 100999), match="both",
        contributions=(("pf", (DNS, HTTP, Filter(direction="in", proto=("tcp",), port=(80, 443)))),)),
    "uid-only": AnchorSpec(WEB, uid_range=(200000, 201999), match="uid", interface="em0",
                           contributions=(("pf", (Filter(to=("10.0.0.0/8",)), HTTP)),)),
    "nat-behind-one-address": AnchorSpec(
        Names.of("mail", "jailhooks"), ip4=("10.0.0.5",), uid_range=(101000, 101999), match="both",
        contributions=(("pf", (Filter(proto=("tcp",), port=(25, 587)),)), ("saddr", (Nat("em0", "203.0.113.5"),)))),
    "site-plugin-rules": AnchorSpec(
        Names.of("db1", "jailhooks"), ip4=("192.0.2.30",), uid_range=(102000, 102999), match="both",
        interface="em0", log_blocked=False,
        contributions=(("pf", (DNS,)),
                       ("dbaccess", (Filter(proto=("tcp",), to=("<db_servers>",), port=(5432,)),
                                     Filter(action="block", proto=("tcp",), port=("6000:6063",), log=True))))),
    "users-forward-and-nat": AnchorSpec(
        Names.of("mail", "jailhooks"), ip4=("10.0.0.5",), uid_range=(101000, 101999), match="address",
        contributions=(("pf", (DNS, Filter(proto=("tcp",), port=(25, 587)), Filter(proto=("tcp",), port=(443,)),
                               Filter(action="block", proto=("tcp",), port=(25, 465, 587), users=True),
                               Filter(proto=("tcp",), port=(443,), users=True),
                               Rdr(port=8080, to_port=80, peers=("198.51.100.0/24",)))),
                       ("saddr", (Nat("em0", "203.0.113.5"),)))),
    "vnet": AnchorSpec(Names.of("vj", "jailhooks"), ip4=("192.0.2.50",), uid_range=(103000, 103999), match="address",
                       vnet=True, contributions=(("pf", (DNS, HTTP, Filter(direction="in", proto=("tcp",), port=(22,)))),
                                                 ("saddr", (Nat("em0", "203.0.113.50"),)))),
    "default-pass": AnchorSpec(WEB, ip4=("192.0.2.10",), match="address", default="pass",
                               contributions=(("pf", (Filter(action="block", proto=("tcp",), port=(25,), log=True),)),)),
}


@pytest.mark.parametrize("case", sorted(CASES))
def test_golden_anchor(case):
    text = render_anchor(CASES[case])
    path = GOLDEN / f"{case}.conf"
    if os.environ.get("UPDATE_GOLDEN"):
        path.write_text(text)
    assert text == path.read_text()
    assert text == render_anchor(CASES[case])  # deterministic
    rs = parse(text, in_anchor=True)  # what pfctl -a ANCHOR -f - accepts
    assert rs.rules


def test_match_needs_what_it_matches_on():
    with pytest.raises(ValueError, match="has no addresses"):
        render_anchor(AnchorSpec(WEB, match="address"))
    with pytest.raises(ValueError, match="no UID block"):
        render_anchor(AnchorSpec(WEB, ip4=("192.0.2.10",), match="both"))
    with pytest.raises(ValueError, match="can only filter tcp and udp"):
        render_anchor(AnchorSpec(WEB, uid_range=(1000, 1999), match="uid",
                                 contributions=(("pf", (Filter(proto=("icmp",)),)),)))


def test_uid_rule_is_the_exclusive_form():
    text = render_anchor(AnchorSpec(WEB, ip4=("192.0.2.10",), uid_range=(20000, 20999), match="both"))
    assert "user 19999 >< 21000" in text and "20000:20999" not in text


def test_names_are_injective_and_valid():
    seen = {}
    for name in ["web", "Web", "we-b", "we_b", "_web", "web_", "a" * 63, "a" * 64, "a" * 200, "a" * 201, "x1"]:
        n = Names.of(name, "jailhooks")
        validate.anchor_path(n.anchor)
        validate.table_name(n.table)
        assert len(n.label) <= 63 and len(n.tag) <= 63
        for field in ("anchor", "table", "tag", "label"):
            key = (field, getattr(n, field))
            assert key not in seen, (name, seen[key])
            seen[key] = name


HOSTILE = st.text(alphabet=st.characters(codec="utf-8"), max_size=40) | st.sampled_from(
    ['web"\npass out all', "a b", "{ any }", "$ext", "# x", "1.2.3.4 port 22", "<t> to any", "192.0.2.1\n",
     "em0 all", "'x'", "web\\", "any }"])


@settings(max_examples=300, deadline=None)
@given(HOSTILE)
def test_hostile_jail_names_never_reach_a_rule(name):
    try:
        validate.jail_name(name)
    except ValueError:
        return
    text = render_anchor(AnchorSpec(Names.of(name, "jailhooks"), ip4=("192.0.2.10",), match="address",
                                    contributions=(("pf", (HTTP,)),)))
    rs = parse(text, in_anchor=True)
    assert len(rs.rules) == 2 and len(rs.tables) == 1


@settings(max_examples=300, deadline=None)
@given(st.sampled_from(["to", "port", "peers", "proto"]), HOSTILE | st.integers())
def test_hostile_rule_values_are_refused_or_canonical(field, value):
    kwargs = {"proto": ("tcp",)} if field == "port" else {}
    try:
        rule = Filter(**{**kwargs, field: (value,)})
    except (ValueError, TypeError):
        return
    text = render_anchor(AnchorSpec(WEB, ip4=("192.0.2.10",), match="address",
                                    contributions=(("pf", (rule,)),)))
    rs = parse(text, in_anchor=True)  # one table, the rule, the default block: nothing more
    assert len(rs.rules) == 2
    for token in ("\n", '"', "#", "$", "{", "}"):
        assert token not in str(getattr(rule, field)[0])


@given(st.one_of(
    st.tuples(*[st.integers(0, 300)] * 4).map(lambda t: ".".join(map(str, t))),
    st.tuples(*[st.text("0123456789", min_size=1, max_size=4)] * 4).map(".".join),
    st.text("0123456789.:/abcx \u0663", max_size=18)))
def test_address_checks_agree_with_ipaddress(text):
    """The string fast path for IPv4 (no ipaddress import on the hook path)
    accepts and returns exactly what ipaddress would."""
    import ipaddress

    try:
        expected = str(ipaddress.IPv4Address(text))
    except ValueError:
        expected = None
    if validate.dotted_quad(text):
        assert expected == text
    try:
        assert validate.ipv4(text) == expected
    except ValueError:
        assert expected is None
