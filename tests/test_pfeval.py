"""The packet evaluator itself, on small rulesets whose verdicts pf.conf(5)
and pf.c state (see pfeval.py for the rules it follows)."""
from __future__ import annotations

from .pfeval import Firewall, Packet

HOOKS = 'nat-anchor "j/*"\nrdr-anchor "j/*"\n'


def out(src="192.0.2.10", dst="198.51.100.1", port=443, uid=None, proto="tcp", iface="em0"):
    return Packet(iface, "out", proto, src, dst, dport=port, uid=uid)


def test_default_is_pass_without_state():
    fw = Firewall("pass out quick proto udp all\n")
    v = fw.test(out())
    assert v.passed and v.rule == "" and not v.state and fw.states == []


def test_last_match_wins_and_quick_stops():
    assert not Firewall("pass out all\nblock out all\n").test(out()).passed
    assert Firewall("block out all\npass out all\n").test(out()).passed
    assert not Firewall("block out quick all\npass out all\n").test(out()).passed


def test_quick_inside_an_anchor_ends_the_whole_ruleset():
    fw = Firewall('anchor "j/*"\npass out all\n', {"j/a": "block out quick all\n"})
    assert not fw.test(out()).passed
    fw = Firewall('anchor "j/*"\npass out all\n', {"j/a": "block out all\n"})
    assert fw.test(out()).passed  # not quick: the later main rule wins


def test_wildcard_walks_children_in_strcmp_order():
    anchors = {"j/web": "pass out quick all\n", "j/Zed": "block out quick all\n", "j/web/x": "pass out quick all\n"}
    fw = Firewall('block out all\nanchor "j/*"\n', anchors)
    v = fw.test(out())
    assert not v.passed and v.rule.startswith("j/Zed")  # "Zed" < "web"; j/web/x is a grandchild


def test_tables_resolve_in_the_anchor_then_main_and_unknown_matches_nothing():
    anchor = "table <t> const { 192.0.2.10 }\nblock out quick from <t> to any\nblock out quick from <nosuch> to any\n"
    fw = Firewall('anchor "j/*"\n', {"j/a": anchor})
    assert not fw.test(out(src="192.0.2.10")).passed
    assert fw.test(out(src="192.0.2.11")).passed
    fw = Firewall('table <m> const { 192.0.2.11 }\nanchor "j/*"\n', {"j/a": "block out quick from <m> to any\n"})
    assert not fw.test(out(src="192.0.2.11")).passed


def test_ports_inclusive_range_and_users_exclusive_range():
    fw = Firewall("block out quick proto tcp from any to any port 1000:2000\n")
    assert not fw.test(out(port=1000)).passed and not fw.test(out(port=2000)).passed
    assert fw.test(out(port=2001)).passed
    fw = Firewall("block out quick proto tcp all user 999 >< 2000\n")
    assert fw.test(out(uid=999)).passed and fw.test(out(uid=2000)).passed
    assert not fw.test(out(uid=1000)).passed and not fw.test(out(uid=1999)).passed


def test_user_restricts_only_tcp_and_udp_and_needs_a_socket():
    fw = Firewall("block out quick all user 999 >< 2000\n")
    assert not fw.test(out(proto="icmp", port=0)).passed  # user does not restrict icmp: blocked for all
    assert fw.test(out(uid=None)).passed  # no socket: the unknown uid is in no range
    assert fw.test(out(uid=0)).passed


def test_translation_comes_first_and_its_tag_is_seen():
    anchor = ("table <t> const { 10.0.0.5 }\nnat on em0 inet from <t> to any tag T -> 203.0.113.5\n"
              "pass out quick from any to any tagged T\nblock out quick from <t> to any\n")
    fw = Firewall(HOOKS + 'block out all\nanchor "j/*"\n', {"j/a": anchor})
    v = fw.test(out(src="10.0.0.5"))
    assert v.passed and v.packet.src == "203.0.113.5" and v.packet.tag == "T"
    fw.states.clear()  # (a state is floating: it would match the same connection on lo0)
    v = fw.test(out(src="10.0.0.5", iface="lo0"))  # not NAT'ed on lo0: the table rule decides
    assert not v.passed


def test_state_lets_replies_through_and_rdr_translates_the_destination():
    anchor = ("table <t> const { 10.0.0.5 }\nrdr on em0 inet proto tcp from any to 203.0.113.5 port 8080 "
              "-> 10.0.0.5 port 80\npass in quick on em0 inet proto tcp from any to 10.0.0.5 port 80 keep state\n"
              "block out quick from <t> to any\n")
    fw = Firewall(HOOKS + 'block in all\nanchor "j/*"\n', {"j/a": anchor})
    v = fw.test(Packet("em0", "in", "tcp", "198.51.100.7", "203.0.113.5", sport=5555, dport=8080))
    assert v.passed and v.state and (v.packet.dst, v.packet.dport) == ("10.0.0.5", 80)
    reply = Packet("em0", "out", "tcp", "10.0.0.5", "198.51.100.7", sport=80, dport=5555, uid=80)
    assert fw.test(reply).rule == "state"
    stranger = Packet("em0", "out", "tcp", "10.0.0.5", "198.51.100.7", sport=80, dport=5556, uid=80)
    assert not fw.test(stranger).passed


def test_a_pass_without_state_leaves_the_reply_to_the_rules():
    fw = Firewall('anchor "j/*"\n', {"j/a": "table <t> const { 192.0.2.10 }\nblock out quick from <t> to any\n"})
    inbound = Packet("em0", "in", "tcp", "198.51.100.7", "192.0.2.10", sport=5555, dport=80)
    assert fw.test(inbound).passed and fw.states == []  # the default pass: no state
    assert not fw.test(Packet("em0", "out", "tcp", "192.0.2.10", "198.51.100.7", sport=80, dport=5555)).passed


def test_set_skip_filters_nothing_on_that_interface():
    fw = Firewall("set skip on lo0\nblock out all\n")
    assert fw.test(out(iface="lo0")).rule == "set skip"
    assert not fw.test(out()).passed
