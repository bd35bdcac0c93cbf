"""The firewall means what the config says: packets, one row each, through
contrib/pf.conf and the anchors that ``jailhooks run start`` loads for the
sample config (contrib/jailhooks.toml), with the daemons that really run in
those jails at their real UIDs (root 0, smmsp 25, www 80, postfix 125,
postgres 770: ../shared/fixtures/freebsd-15.1/etc and the ports' UIDs file)
and the jails' own users in their blocks.  Verdicts by pfeval.py."""
from __future__ import annotations

import ipaddress
from pathlib import Path

import pytest

from jailhooks.pf.syntax import parse

from .pfeval import Firewall, Packet

CONTRIB = Path(__file__).resolve().parent.parent / "contrib"
ROOT, SMMSP, WWW, POSTFIX, POSTGRES = 0, 25, 80, 125, 770
HOST = "192.0.2.1"  # the host's own address on em0
CLIENT = "198.51.100.7"
WORLD = "198.51.100.1"

# Jails beyond the sample, each for one kind of row.
EXTRA = '''
# app: on a private address behind the host's public one, with a port forward
[jail.app]
path = "{root}/app"
ip4 = ["10.0.0.5"]
[jail.app.saddr]
nat = "203.0.113.5"
[jail.app.pf]
allow = [{{ proto = "tcp", port = 443 }}]
rdr = [{{ proto = "tcp", port = 8080, to_port = 80 }}]

# shop and blog share the host's address: known by their UID blocks only
[jail.shop]
path = "{root}/shop"
[jail.shop.pf]
allow = [{{ proto = "tcp", port = 443 }}]
[jail.blog]
path = "{root}/blog"
[jail.blog.pf]
allow = [{{ proto = "tcp", port = 25 }}]

# vnet: a network stack of its own, behind epair0a; NAT'ed on the way out
[jail.vj]
path = "{root}/vj"
ip4 = ["192.0.2.50"]
vnet = true
[jail.vj.saddr]
nat = "203.0.113.50"
[jail.vj.pf]
allow = [{{ proto = "tcp", port = 443 }}]
inbound = [{{ proto = "tcp", port = 22 }}]

# hosting: customers may only fetch over https; the site-wide allow (the resolver) still holds for them
[jail.hosting]
path = "{root}/hosting"
ip4 = ["192.0.2.70"]
[jail.hosting.pf]
allow = [{{ proto = "tcp", port = [25, 443] }}]
[jail.hosting.pf.users]
allow = [{{ proto = "tcp", port = 443 }}]

# closed: the same, without the site-wide allow
[jail.closed]
path = "{root}/closed"
ip4 = ["192.0.2.71"]
[jail.closed.pf]
inherit_allow = false
allow = [{{ proto = "tcp", port = 443 }}]
[jail.closed.pf.users]
allow = [{{ proto = "tcp", port = 443 }}]

# legacy: the strict form (match = "both") kept from before 0.3
[jail.legacy]
path = "{root}/legacy"
ip4 = ["192.0.2.60"]
[jail.legacy.pf]
match = "both"
allow = [{{ proto = "tcp", port = 25 }}]
'''

# a site plugin that blocks X11 for every jail, against web's broader allow
SITE_PLUGIN = '''
from jailhooks import hookimpl
from jailhooks.pf.rules import Filter

@hookimpl
def jailhooks_pf_rules(ctx):
    return [Filter(action="block", proto="tcp", port="6000:6063")]
'''


@pytest.fixture(scope="module")
def site(tmp_path_factory):
    """The sample config plus EXTRA, every jail started through the CLI."""
    from .conftest import Env, status_records

    root = tmp_path_factory.mktemp("policy")
    env = Env(root)
    env.write_plugin("noX11", SITE_PLUGIN)
    sample = (CONTRIB / "jailhooks.toml").read_text()
    sample = sample.replace('mode = "auto"', f'mode = "simulated"\nstate_dir = "{env.state}"')
    sample = sample.replace("/usr/jails", str(root / "jails")).replace('# nat_interface = "em0"', 'nat_interface = "em0"')
    sample = sample.replace('# plugins = ["mysite.jailpolicy"]', 'plugins = ["noX11"]')
    env.config.write_text(sample + EXTRA.format(root=root / "jails"))
    jails = {"web": ("192.0.2.10", "2001:db8::10"), "mail": ("192.0.2.20", ""), "db": ("192.0.2.30", ""),
             "app": ("10.0.0.5", ""), "shop": ("", ""), "blog": ("", ""), "legacy": ("192.0.2.60", ""),
             "hosting": ("192.0.2.70", ""), "closed": ("192.0.2.71", "")}
    texts = {}
    for name, (ip4, ip6) in jails.items():
        env.create_jail(name, ip4=ip4, ip6=ip6)
        assert env.run("-q", "run", "start", name).code == 0, name
    env.jail_root("vj")
    assert env.sim.run(["/usr/sbin/jail", "-c", "name=vj", f"path={root / 'jails' / 'vj'}", "vnet", "persist"],
                       None, 5, True).returncode == 0
    assert env.run("-q", "run", "start", "vj").code == 0
    for name in list(jails) + ["vj"]:
        res = env.subprocess("render", name)
        assert res.code == 0, res.err
        texts[f"jailhooks/{name}"] = res.out
    status = {r["jail"]: r for r in status_records(env.subprocess("status", "--json").out)}
    yield env, texts, status
    env.close()


@pytest.fixture(scope="module")
def fw(site):
    _, texts, _ = site
    return Firewall((CONTRIB / "pf.conf").read_text(), texts, interfaces=EM0)


def user_of(site, jail: str) -> int:
    """A user the jail's admin created: inside its UID block."""
    return site[2][jail]["uid_range"][0] + 5


ADDR = {"web": "192.0.2.10", "mail": "192.0.2.20", "db": "192.0.2.30", "app": "10.0.0.5", "shop": HOST,
        "blog": HOST, "legacy": "192.0.2.60", "hosting": "192.0.2.70", "closed": "192.0.2.71"}
LOCAL = set(ADDR.values()) | {"2001:db8::10"}
# em0: the host's own address first, then the jails' addresses as its aliases
EM0 = {"em0": [HOST] + sorted(set(ADDR.values()) - {HOST, "10.0.0.5"}) + ["2001:db8::1", "2001:db8::10"]}


def send(fw, jail, uid, dst, port, proto="tcp", src=None):
    """A jailed process (or the host's, for jails without an address) opens a
    socket to DST:PORT; it leaves on lo0 when DST is local, else on em0."""
    src = src or ADDR[jail]
    iface = "lo0" if dst in LOCAL else "em0"
    return fw.test(Packet(iface, "out", proto, src, dst, dport=port, uid=uid, sport=40000 + len(fw.states)))


ROWS = [
    # jail, who (uid or "user"), destination, port, proto -> pass?
    ("web", WWW, WORLD, 443, "tcp", True),           # nginx/php-fpm fetch over https
    ("web", ROOT, "192.0.2.80", 443, "tcp", True),   # root runs pkg against the mirror
    ("web", ROOT, "192.0.2.53", 53, "udp", True),    # and resolves names
    ("web", "user", WORLD, 443, "tcp", True),        # a customer's script may fetch
    ("web", "user", WORLD, 25, "tcp", False),        # but not send mail itself
    ("web", "user", "192.0.2.20", 25, "tcp", False),  # not even through the mail jail
    ("web", SMMSP, "192.0.2.20", 25, "tcp", True),   # the local relay may (jail to jail, lo0)
    ("web", WWW, "192.0.2.30", 5432, "tcp", True),   # php to the database (jail to jail)
    ("web", WWW, WORLD, 6000, "tcp", False),         # a site plugin's block beats web's tcp allow
    ("web", WWW, WORLD, 22, "tcp", False),           # nothing else
    ("mail", POSTFIX, WORLD, 25, "tcp", True),       # only mail sends SMTP
    ("mail", POSTFIX, WORLD, 587, "tcp", True),
    ("mail", ROOT, "192.0.2.80", 443, "tcp", True),  # pkg
    ("mail", POSTFIX, WORLD, 443, "tcp", False),
    ("mail", "user", WORLD, 25, "tcp", True),        # mail's users are not restricted further
    ("mail", POSTFIX, "192.0.2.30", 5432, "tcp", False),  # mail may not reach db
    ("db", ROOT, "192.0.2.40", 22, "tcp", True),     # backups
    ("db", POSTGRES, "192.0.2.40", 22, "tcp", True),  # the jail's rule holds for any UID
    ("db", POSTGRES, WORLD, 443, "tcp", False),
    ("db", ROOT, WORLD, 0, "icmp", False),           # the default block holds icmp too
    ("db", ROOT, HOST, 22, "tcp", False),            # to the host (lo0): the policy holds there too
    ("app", WWW, WORLD, 443, "tcp", True),           # NAT'ed: matched by its nat tag
    ("app", WWW, WORLD, 25, "tcp", False),
    ("shop", "user", WORLD, 443, "tcp", True),       # shared address: the UID block decides
    ("shop", "user", WORLD, 25, "tcp", False),
    ("blog", "user", WORLD, 25, "tcp", True),
    ("blog", "user", WORLD, 443, "tcp", False),
    ("shop", ROOT, WORLD, 25, "tcp", True),          # what a UID match cannot see: root, daemons
    ("hosting", "user", WORLD, 443, "tcp", True),    # a customer's script may fetch over https
    ("hosting", "user", "192.0.2.53", 53, "udp", True),  # and resolve names: the site-wide allow holds
    ("hosting", "user", WORLD, 25, "tcp", False),    # but not send mail, which the jail's MTA may
    ("hosting", ROOT, WORLD, 25, "tcp", True),
    ("closed", "user", "192.0.2.53", 53, "udp", False),  # inherit_allow = false: not even that
    ("closed", ROOT, "192.0.2.53", 53, "udp", False),
    ("legacy", "user", WORLD, 25, "tcp", True),      # match = "both": the block's users pass
    ("legacy", POSTFIX, WORLD, 25, "tcp", False),    # and a daemon outside the block cannot
]


@pytest.mark.parametrize("jail,who,dst,port,proto,passes", ROWS,
                         ids=[f"{r[0]}-{r[1]}-{r[2]}:{r[3]}/{r[4]}" for r in ROWS])
def test_outbound(site, fw, jail, who, dst, port, proto, passes):
    uid = user_of(site, jail) if who == "user" else who
    v = send(fw, jail, uid, dst, port, proto)
    assert v.passed is passes, v


def test_another_jails_root_switched_into_a_uid_block_gets_that_jails_rules(site, fw):
    """Documented limit of uid matching: blog's root runs as one of shop's UIDs."""
    v = send(fw, "blog", user_of(site, "shop"), WORLD, 443)
    assert v.passed  # shop's rules applied to blog's traffic: only an address stops this
    # a jail with an address cannot be reached that way: web's root as mail's user gets web's rules
    v = send(fw, "web", user_of(site, "mail"), WORLD, 25)
    assert not v.passed


def test_inbound_keeps_state_so_the_reply_passes(fw):
    v = fw.test(Packet("em0", "in", "tcp", CLIENT, "192.0.2.10", sport=50001, dport=443))
    assert v.passed and v.state
    reply = Packet("em0", "out", "tcp", "192.0.2.10", CLIENT, sport=443, dport=50001, uid=WWW)
    assert fw.test(reply).rule == "state"
    # db takes no connections from outside; the baseline blocks them in
    assert not fw.test(Packet("em0", "in", "tcp", CLIENT, "192.0.2.30", sport=50002, dport=5432)).passed


def test_without_the_baseline_an_inbound_connection_gets_no_state_and_its_reply_is_blocked(site):
    _, texts, _ = site
    old = Firewall('nat-anchor "jailhooks/*"\nrdr-anchor "jailhooks/*"\nanchor "jailhooks/*"\npass out all\n', texts)
    v = old.test(Packet("em0", "in", "tcp", CLIENT, "192.0.2.30", sport=50003, dport=5432))
    assert v.passed and not v.state  # no rule: pass without state
    reply = Packet("em0", "out", "tcp", "192.0.2.30", CLIENT, sport=5432, dport=50003, uid=POSTGRES)
    assert not old.test(reply).passed  # ... so db's default block drops the reply


def test_the_hosts_sshd_is_open_and_a_jails_port_22_is_not(fw):
    """contrib/pf.conf passes ssh to ($ext_if:0), the host's own address:
    not to the jails' addresses, which are aliases on the same interface."""
    assert fw.test(Packet("em0", "in", "tcp", CLIENT, HOST, sport=50010, dport=22)).passed
    v = fw.test(Packet("em0", "in", "tcp", CLIENT, "192.0.2.10", sport=50011, dport=22))
    assert not v.passed and v.rule.startswith("main:block drop in log all"), v
    assert not fw.test(Packet("em0", "in", "tcp", CLIENT, "192.0.2.30", sport=50012, dport=22)).passed
    # vj lists 22 in its inbound: its own anchor opens it
    assert fw.test(Packet("em0", "in", "tcp", CLIENT, "192.0.2.50", sport=50013, dport=22)).passed


def test_port_forward_and_its_reply(fw):
    v = fw.test(Packet("em0", "in", "tcp", CLIENT, "203.0.113.5", sport=50004, dport=8080))
    assert v.passed and (v.packet.dst, v.packet.dport) == ("10.0.0.5", 80)
    reply = Packet("em0", "out", "tcp", "10.0.0.5", CLIENT, sport=80, dport=50004, uid=WWW)
    assert fw.test(reply).rule == "state"
    # the forward is to port 80 only
    assert not fw.test(Packet("em0", "in", "tcp", CLIENT, "203.0.113.5", sport=50005, dport=8081)).passed


def test_vnet_jail_is_filtered_as_its_packets_enter_the_host(site, fw):
    _, texts, status = site
    assert status["vj"]["vnet"] is True and "user" not in texts["jailhooks/vj"]
    def through(port):  # in from the jail's epair (no socket), then out on em0
        first = fw.test(Packet("epair0a", "in", "tcp", "192.0.2.50", WORLD, sport=41000 + port, dport=port))
        if not first.passed:
            return False
        return fw.test(Packet("em0", "out", "tcp", "192.0.2.50", WORLD, sport=41000 + port, dport=port)).passed
    assert through(443)
    assert not through(25)
    assert fw.test(Packet("em0", "in", "tcp", CLIENT, "192.0.2.50", sport=50006, dport=22)).passed


def test_set_skip_on_lo0_would_leave_jail_to_jail_traffic_unfiltered(site):
    _, texts, _ = site
    skipping = Firewall("set skip on lo0\n" + (CONTRIB / "pf.conf").read_text(), texts)
    assert send(skipping, "mail", POSTFIX, "192.0.2.30", 5432).rule == "set skip"


def test_render_is_what_start_loaded(site):
    env, texts, _ = site
    for anchor, text in texts.items():
        loaded = env.anchor(anchor)
        rs = parse(text, in_anchor=True)
        assert loaded["filter"] == rs.lines("filter") and loaded["nat"] == rs.lines("nat"), anchor
        assert loaded["tables"] == rs.tables, anchor


def test_every_address_of_a_jail_is_in_its_table(site):
    _, texts, _ = site
    table = next(line for line in texts["jailhooks/web"].splitlines() if line.startswith("table"))
    assert "192.0.2.10" in table and str(ipaddress.ip_address("2001:db8::10")) in table


# -- the policy through the CLI ----------------------------------------------------------------

def test_render_of_a_jail_without_a_lease_is_what_start_loads(env, cli):
    env.write_config(f'[jail.web]\npath = "{env.jail_root("web")}"\nip4 = "192.0.2.10"\n'
                     '[jail.web.pf]\nallow = [{ proto = "tcp", port = 443 }]\n'
                     '[jail.web.pf.users]\nblock = [{ proto = "tcp", port = 25 }]\n'
                     '[jail.other]\nip4 = "192.0.2.11"\n')
    assert cli("run", "create", "other").code == 0  # takes the first block: web's is the next one
    rendered = cli("render", "web")
    assert rendered.code == 0, rendered.err
    assert "user 100999 >< 102000" in rendered.out  # the block start will allocate: 101000-101999
    assert cli("status", "--json", "web").jails()[0]["uid_range"] is None  # render allocated nothing
    env.create_jail("web", ip4="192.0.2.10")
    assert cli("run", "start", "web").code == 0
    rs = parse(rendered.out, in_anchor=True)
    loaded = env.anchor("jailhooks/web")
    assert loaded["filter"] == rs.lines("filter") and loaded["tables"] == rs.tables
    assert cli("render", "web").out == rendered.out


def test_uid_match_with_nat_still_defines_the_table_the_nat_rule_needs(env, cli):
    env.write_config('[saddr]\nnat_interface = "em0"\n[jail.app]\nip4 = "10.0.0.5"\n'
                     '[jail.app.saddr]\nnat = "203.0.113.5"\n[jail.app.pf]\nmatch = "uid"\n')
    env.create_jail("app", ip4="10.0.0.5")
    assert cli("run", "start", "app").code == 0
    loaded = env.anchor("jailhooks/app")
    assert loaded["tables"] == {"jail_app": ["10.0.0.5"]}
    assert loaded["nat"] == ["nat on em0 inet from <jail_app> to any tag JH_app -> 203.0.113.5"]
    assert all("user" in r or "tagged" in r for r in loaded["filter"])


def test_a_pass_for_the_users_cannot_widen_the_jails_own(env, cli):
    env.write_config('[jail.web]\nip4 = "192.0.2.10"\n[jail.web.pf]\nallow = [{ proto = "tcp", port = 443 }]\n'
                     '[jail.web.pf.users]\nallow = [{ proto = "tcp", port = 22 }]\n')
    res = cli("render", "web")
    assert res.code == 65
    assert ("jail web: a pass for the jail's users (proto tcp to any port 22, from policy) is not within one of the "
            "jail's own passes") in res.err
    env.write_config('[jail.web]\nip4 = "192.0.2.10"\n[jail.web.pf]\nallow = [{ proto = "tcp", port = [80, 443] }]\n'
                     '[jail.web.pf.users]\nallow = [{ proto = "tcp", port = 443 }]\n')
    assert cli("render", "web").code == 0


def test_check_says_what_the_match_mode_does_with_a_vnet_jail_and_with_accounts_outside_the_block(env, cli):
    root = env.jail_root("shop")
    (root / "etc" / "passwd").write_text("root:*:0:0::0:0:Charlie &:/root:/bin/sh\n"
                                         "www:*:80:80::0:0:World Wide Web Owner:/nonexistent:/usr/sbin/nologin\n")
    env.write_config(f'[jail.shop]\npath = "{root}"\n[jail.vj]\npath = "{env.jail_root("vj")}"\nip4 = "192.0.2.50"\n'
                     'vnet = true\n')
    assert cli("run", "create", "shop").code == 0 and cli("run", "create", "vj").code == 0
    out = cli("check", "shop")
    assert ("jail shop: 2 account(s) outside its UID block 100000-100999: root (0), www (80); match = \"uid\" "
            "cannot see them") in out.out
    assert "jail vj is a VNET jail" in cli("check", "vj").out
