"""Reading what pf holds as pfctl prints it (jailhooks/pf/listing.py), and
the evaluator's refusal to guess (jailhooks/pf/evaluate.py).

The recursive format is pfctl_show_rules()/pfctl_show_nat() with
PF_OPT_RECURSE (FreeBSD 15.1 sbin/pfctl/pfctl.c): a rule that calls an
anchor ends in " {", its contents are indented two spaces per level
(INDENT), "}" closes; a wildcard's children print as `anchor "NAME" all {`
(`nat-anchor "NAME" all {` below both translation hooks)."""
from __future__ import annotations

import pytest

from jailhooks.pf.evaluate import Packet, Ruleset
from jailhooks.pf.listing import listing, parse_listing, parse_rule

from .conftest import FIXTURES

TREE = '''\
block drop in log all
anchor "jailhooks/*" all {
  anchor "mail" all {
    pass out quick proto tcp from <jail_mail> to any port = smtp flags S/SA keep state label "jailhooks:mail"
  }
  anchor "web" all {
    block drop out log quick from <jail_web> to any label "jailhooks:web"
  }
}
pass out all flags S/SA keep state
'''


def out(src="192.0.2.10", port=443, uid=0, iface="em0", proto="tcp"):
    return Packet(iface, "out", proto, src, "198.51.100.1", dport=port, uid=uid)


def test_the_simulated_pfctl_prints_the_recursive_form_pfctl_prints():
    main = ['block drop in log all', 'anchor "jailhooks/*" all', "pass out all flags S/SA keep state"]
    anchors = {"jailhooks/web": ['block drop out log quick from <jail_web> to any label "jailhooks:web"'],
               "jailhooks/mail": ['pass out quick proto tcp from <jail_mail> to any port = smtp flags S/SA keep '
                                  'state label "jailhooks:mail"']}
    assert listing(main, anchors, "rules") == TREE


def test_translation_children_print_as_nat_anchor_below_both_hooks():
    text = listing(['nat-anchor "j/*" all', 'rdr-anchor "j/*" all'], {"j/a": ["nat on em0 from any to any -> 192.0.2.1"]},
                   "nat")
    assert text == ('nat-anchor "j/*" all {\n  nat-anchor "a" all {\n    nat on em0 from any to any -> 192.0.2.1\n  }\n}\n'
                    'rdr-anchor "j/*" all {\n  nat-anchor "a" all {\n    nat on em0 from any to any -> 192.0.2.1\n  }\n}\n')
    rules = parse_listing(text)
    assert [path for r in rules for path, _ in r.children] == ["j/a", "j/a"]


def test_the_tree_is_read_back_with_each_rule_in_its_anchor():
    rules = parse_listing(TREE)
    assert [r.kind for r in rules] == ["filter", "anchor", "filter"]
    children = rules[1].children
    assert [path for path, _ in children] == ["jailhooks/mail", "jailhooks/web"]
    assert children[1][1][0].path == "jailhooks/web" and children[1][1][0].src.value == "jail_web"


@pytest.mark.parametrize("name", ["web-filter.s-rules.derived.txt", "web-dualstack.s-rules.derived.txt",
                                  "web-nat-table.s-rules.derived.txt", "web-nat-table.s-nat.derived.txt"])
def test_the_recorded_outputs_read_without_anything_unmodelled(name):
    rules = parse_listing((FIXTURES / "pf" / name).read_text())
    assert rules and all(not r.unmodelled for r in rules)


def test_print_rule_forms_are_read():
    r = parse_rule('pass in log (all, user) quick on ! em0 inet proto tcp from ! 10.0.0.0/8 port 1000 >< 2000 '
                   'to (em0:0) port = ssh user 999 >< 2000 flags S/SA keep state (max 10) label "x" ridentifier 7 '
                   'tag T tagged U')
    assert (r.action, r.direction, r.log, r.quick, r.interface, r.interface_not, r.af, r.proto) == (
        "pass", "in", True, True, "em0", True, 4, "tcp")
    assert (r.src.neg, r.src.value, r.src.port, r.dst.kind, r.dst.value, r.dst.port) == (
        True, "10.0.0.0/8", ("><", 1000, 2000), "dynamic", "em0:0", ("=", 22, 0))
    assert (r.user, r.tag, r.tagged, r.keep_state, r.unmodelled) == (("><", 999, 2000), "T", "U", True, [])
    assert parse_rule("pass out route-to (em1 192.0.2.1) all").unmodelled == ["route-to"]
    assert parse_rule("pass out all probability 50%").unmodelled == ["probability"]
    assert parse_rule("pass in inet from (lo0)/8 to any").unmodelled == ["address (lo0)/8"]
    # match conditions (pf.conf(5)) are never read as if the rule matched every packet
    for condition in ("tos 0x10", "prio 3", "max-pkt-rate 100/10", "once"):
        assert parse_rule(f"pass out quick all {condition}").unmodelled == [condition.split()[0]], condition


def test_anonymous_anchors_are_evaluated_like_named_ones():
    rules = parse_listing('anchor in all {\n  block drop in quick all\n}\npass in all\n')
    v = Ruleset(rules, []).test(Packet("em0", "in", "tcp", "198.51.100.1", "192.0.2.10", dport=22))
    assert v.action == "block" and not v.unproven


def test_a_rule_that_could_decide_but_is_not_modelled_makes_the_verdict_unproven():
    rs = Ruleset(parse_listing("pass out quick on egress all\nblock drop out quick all\n"), [])
    v = rs.test(out())
    assert v.unproven == "main ruleset: pass out quick on egress all (cannot evaluate: on egress: an interface group)"
    # ... unless its modelled conditions already rule it out
    rs = Ruleset(parse_listing("pass out quick proto udp on egress all\nblock drop out quick all\n"), [])
    assert rs.test(out()).unproven == "" and rs.test(out()).action == "block"


def test_a_later_certain_match_overrides_an_earlier_unproven_one():
    rs = Ruleset(parse_listing("pass out route-to (em1 192.0.2.1) all\nblock drop out all\n"), [])
    v = rs.test(out())
    assert (v.action, v.unproven) == ("block", "")
    rs = Ruleset(parse_listing("block drop out all\npass out route-to (em1 192.0.2.1) all\n"), [])
    assert rs.test(out()).unproven.startswith("main ruleset: pass out route-to")


def test_an_unknown_interface_never_matches_lo0_and_is_unproven_against_em0():
    rs = Ruleset(parse_listing("block drop out quick on lo0 all\npass out quick on em0 all\nblock drop out all\n"), [])
    v = rs.test(out(iface=None))
    assert v.unproven.startswith("main ruleset: pass out quick on em0 all")


def test_interface_addresses_are_known_only_when_given():
    rules = parse_listing("pass in quick proto tcp from any to (em0:0) port = ssh flags S/SA keep state\n"
                          "block drop in all\n")
    ssh = Packet("em0", "in", "tcp", "198.51.100.1", "192.0.2.10", dport=22)
    assert Ruleset(rules, []).test(ssh).unproven
    known = Ruleset(rules, [], interfaces={"em0": ["192.0.2.1", "192.0.2.10"]})
    assert known.test(ssh).action == "block"  # an alias: (em0:0) is the primary address only
    assert known.test(ssh._replace(dst="192.0.2.1")).action == "pass"


def test_ports_pfctl_named_from_the_hosts_services_are_read_back():
    """print_port() names a port with getservbyport(): on a real host any
    name of its /etc/services may appear, not only the simulator's few."""
    import socket

    try:
        want = socket.getservbyname("submissions", "tcp")
    except OSError:
        pytest.skip("this machine's services database has no 'submissions'")
    r = parse_rule("pass out quick proto tcp from any to any port = submissions flags S/SA keep state")
    assert (r.dst.port, r.unmodelled) == (("=", want, 0), [])
    assert parse_rule("pass out quick proto tcp from any to any port = no-such-service").unmodelled == [
        "port no-such-service"]
