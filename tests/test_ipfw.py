"""The ipfw backend, driven through the CLI on the simulated host as jail(8)
drives it: exec.prestart (held by the jail's addresses and UID block), the
jail is made, exec.created (its prison: `jail JID`), exec.poststart; the
rules read back with `ipfw list` and evaluated with ipfw's semantics."""
from __future__ import annotations

import json

import pytest

from jailhooks.ipfw.rules import Ruleset, parse_listing
from jailhooks.probes import Packet

IPFW = '[firewall]\nbackend = "ipfw"\n'
WEB = ('[jail.web]\npath = "{root}"\nip4 = "192.0.2.10"\n[jail.web.pf]\n'
       'allow = [{{ proto = "tcp", port = [80, 443] }}, {{ proto = "udp", to = "192.0.2.53", port = 53 }}]\n'
       'users.block = [{{ proto = "tcp", port = 25, log = true }}]\n')
# a jail without an address of its own: it sends from the host's
BUILD = '[jail.build]\npath = "{root}"\n[jail.build.pf]\nallow = [{{ proto = "tcp", port = 443 }}]\n'


@pytest.fixture
def web(env):
    env.write_config(IPFW, WEB.format(root=env.jail_root("web")))
    return env


def listed(env) -> list[str]:
    return env.sim.run(["/sbin/ipfw", "list"], None, 5, False).stdout.splitlines()


def jid(env, name: str) -> int:
    return env.host_state()["jails"][name]["jid"]


def start(env, cli, name="web", ip4="192.0.2.10"):
    """jail(8): exec.prestart, the jail is made, exec.created, exec.poststart."""
    for phase in ("prestart", "created", "poststart"):
        if phase == "created":
            env.create_jail(name, ip4=ip4)
        res = cli("run", phase, name)
        if res.code != 0:
            return res
    return res


def verdict(env, pkt: Packet, jail_id, rule: bool = False):
    tables = env.host_state()["ipfw"]["tables"]
    rs = Ruleset(parse_listing(listed(env)), tables=lambda name: list(tables[name]["entries"]) if name in tables
                 else None, jailed=frozenset({"192.0.2.10"}))
    v = rs.test(pkt, jail_id)
    return (v.action, v.rule.number if v.rule else None) if rule else v.action


def test_render_prints_the_ipfw_rules(web, cli):
    res = cli("render", "web")
    assert res.code == 0, res.err
    assert "# until exec.created:" in res.out and "# from exec.created on:" in res.out
    assert "allow tcp from 192.0.2.10 to any 80,443 out keep-state" in res.out  # held: by its address
    assert "allow tcp from any to any 80,443 out jail 0 keep-state" in res.out  # jailed: by its prison
    assert "deny log logdst syslog tcp from any to any 25 out jail 0 lookup uid jh_web_u1" in res.out


def test_a_start_holds_then_jails_then_a_stop_deletes(web, cli):
    assert cli("run", "prestart", "web").code == 0
    held = listed(web)
    assert "10001 deny log logdst syslog tcp from any to any 25 out lookup uid jh_web_u0" in held
    assert "10002 allow tcp from 192.0.2.10 to any 80,443 out keep-state :default" in held
    web.create_jail("web", ip4="192.0.2.10")
    res = cli("run", "created", "web")
    assert res.code == 0, res.err
    assert "jailed rules 10050-10099 loaded and enforced" in res.out
    j = jid(web, "web")
    jailed = listed(web)
    assert f"10052 allow tcp from any to any 80,443 out jail {j} keep-state :default" in jailed
    assert not any(line.startswith("100") and int(line[:5]) < 10050 for line in jailed)  # the held half is gone
    assert list(web.host_state()["ipfw"]["tables"]) == ["jh_web_u1"]
    assert cli("run", "poststart", "web").code == 0
    status = json.loads(cli("status", "--json").out)
    record = status["jailhooks-status"]["jail"][0]["plugins"]["ipfw"]
    assert record["ipfw_rules"] == "10050-10099" and record["rules_loaded"] and record["jailed"]
    assert record["passed"] == record["blocked"] == {"packets": 0, "bytes": 0}  # ipfw show: nothing sent yet
    web.remove_jail("web")
    assert cli("run", "poststop", "web").code == 0
    assert listed(web) == ["65535 count ip from any to any not // orphaned dynamic states counter",
                           "65535 deny ip from any to any"]
    assert web.host_state()["ipfw"]["tables"] == {}


def test_root_and_daemons_of_a_jail_without_an_address_are_governed(env, cli):
    """pf can only see such a jail's users (its UID block); ipfw sees its
    prison: root and postfix (125) are held to the policy too."""
    env.write_config(IPFW, BUILD.format(root=env.jail_root("build")))
    assert start(env, cli, "build", ip4="").code == 0
    j = jid(env, "build")
    for uid in (0, 125, 100005):
        assert verdict(env, Packet(None, "out", "tcp", None, "198.51.100.1", dport=25, uid=uid), j) == "block"
        assert verdict(env, Packet(None, "out", "tcp", None, "198.51.100.1", dport=443, uid=uid), j) == "pass"
    # the host's own root, outside any jail, is not this jail's business: ipfw's default rule decides
    assert verdict(env, Packet(None, "out", "tcp", None, "198.51.100.1", dport=25, uid=0), None, rule=True) \
        == ("block", 65535)


def test_a_reload_never_opens_a_gap(web, cli):
    """sync reloads into the other half, then deletes the old one: listed and
    evaluated between the steps, every packet gets the old or the new verdict."""
    assert start(web, cli).code == 0
    j = jid(web, "web")
    probe = Packet(None, "out", "tcp", "192.0.2.10", "198.51.100.1", dport=8443, uid=0)
    assert verdict(web, probe, j) == "block"
    web.write_config(IPFW, WEB.format(root=web.jail_root("web")).replace("port = [80, 443]", "port = [80, 443, 8443]"))
    from jailhooks.app import load_app
    from jailhooks.ipfw.render import Rendered

    app = load_app(str(web.config))
    ctx = app.context(app.engine.resolve("web"), "sync")
    from jailhooks.plugins import ipfw as plugin

    new = plugin._render(ctx, j, 0)
    steps = new.script() + ["delete 10050-10099", "table jh_web_u1 destroy"]
    seen = []
    for i in range(len(steps)):  # the script one command at a time, as ipfw reads it
        assert web.sim.run(["/sbin/ipfw", "-q", "/dev/stdin"], steps[i] + "\n", 5, True).returncode == 0
        seen.append(verdict(web, probe, j))
        # what both the old and the new rules decide alike is decided so at every step
        assert verdict(web, Packet(None, "out", "tcp", "192.0.2.10", "198.51.100.1", dport=25, uid=100005), j) \
            == "block"
        assert verdict(web, Packet(None, "out", "tcp", "192.0.2.10", "198.51.100.1", dport=22, uid=0), j) == "block"
        assert verdict(web, Packet(None, "out", "tcp", "192.0.2.10", "198.51.100.1", dport=443, uid=0), j) == "pass"
    # 8443: the old rules' verdict until the new ones decide, then theirs, never back
    assert seen == sorted(seen) and seen[0] == "block" and seen[-1] == "pass", seen
    assert Rendered.from_text(new.text).rules == new.rules  # what is kept reads back as what was loaded


def admins_allow_all(env, number: int) -> None:
    """The admin's own rule NUMBER: allow ip from any to any."""
    assert env.sim.run(["/sbin/ipfw", "-q", "add", str(number), "allow", "ip", "from", "any", "to", "any"],
                       None, 5, True).returncode == 0


def test_start_fails_closed_when_an_earlier_rule_passes_everything(web, cli):
    admins_allow_all(web, 100)
    res = cli("run", "prestart", "web")
    assert res.code == 1
    assert "its ipfw rules are loaded but not enforced" in res.err
    assert "decided by rule 00100 allow ip from any to any" in res.err
    assert [line for line in listed(web) if not line.startswith(("00100", "65535"))] == []  # undone


def test_a_failed_load_keeps_the_old_rules_and_deletes_the_half_it_began(web, cli):
    assert start(web, cli).code == 0
    before = listed(web)
    web.sim.add_fault(["ipfw", "-q", "/dev/stdin"], rc=65, stderr="Line 9: injected\n", times=1)
    res = cli("sync")
    assert res.code != 0
    assert listed(web) == before


def test_check_finds_ipfw_disabled_and_a_flushed_jail(web, cli):
    assert start(web, cli).code == 0
    assert "ok      ipfw: ipfw is enabled (simulated host)" in cli("check").out
    assert web.sim.run(["/sbin/ipfw", "-f", "-q", "flush"], None, 5, True).returncode == 0
    report = cli("check")
    assert report.code == 1 and "jail web runs without its ipfw rules (jailhooks sync)" in report.out
    assert cli("sync").code == 0  # sync after `ipfw -f flush` restores every running jail
    assert any(" jail " in line for line in listed(web))
    assert cli("check").code == 0


def test_install_prints_exec_created_for_ipfw_only(web, cli, env):
    out = cli("install", "jail.conf").out
    assert 'exec.created   += "' in out and "run created -- $name" in out
    assert "exec_created" in cli("install", "iocage", "web").out
    assert "has no exec.created" in cli("install", "ezjail").out


def test_the_same_policy_gives_the_same_verdicts_under_pf_and_ipfw(env, cli):
    """The sample config's packet table where both firewalls can express it:
    web's users may not send mail, web may reach 80/443 and its resolver."""
    packets = [(Packet(None, "out", "tcp", "192.0.2.10", "198.51.100.1", dport=443, uid=0), "pass"),
               (Packet(None, "out", "tcp", "192.0.2.10", "198.51.100.1", dport=25, uid=100005), "block"),
               (Packet(None, "out", "tcp", "192.0.2.10", "198.51.100.1", dport=25, uid=0), "block"),
               (Packet(None, "out", "udp", "192.0.2.10", "192.0.2.53", dport=53, uid=125), "pass"),
               (Packet(None, "out", "udp", "192.0.2.10", "198.51.100.1", dport=53, uid=0), "block"),
               (Packet(None, "out", "tcp", "192.0.2.10", "198.51.100.1", dport=80, uid=100005), "pass")]
    env.write_config(IPFW, WEB.format(root=env.jail_root("web")))
    assert start(env, cli).code == 0
    j = jid(env, "web")
    assert [verdict(env, p, j) for p, _ in packets] == [v for _, v in packets]
    env.remove_jail("web")
    assert cli("run", "poststop", "web").code == 0
    env.write_config(WEB.format(root=env.jail_root("web")))  # the pf backend
    from .test_enforced import start as pf_start

    assert pf_start(env, cli).code == 0
    from jailhooks.pf.prove import live

    from jailhooks.app import load_app

    ruleset = live(load_app(str(env.config)).host)
    assert [ruleset.test(p).action for p, _ in packets] == [v for _, v in packets]


def test_status_counts_what_the_jails_rules_passed_and_blocked(web, cli):
    assert start(web, cli).code == 0
    for dest, uid in (("198.51.100.1:25", "100005"), ("198.51.100.1:443", "0"), ("198.51.100.1:22", "0")):
        assert cli("sim", "send", "web", "tcp", dest, "--uid", uid).code == 0
    record = json.loads(cli("status", "--json").out)["jailhooks-status"]["jail"][0]["plugins"]["ipfw"]
    assert record["passed"] == {"packets": 1, "bytes": 40} and record["blocked"] == {"packets": 2, "bytes": 80}
    shown = web.sim.run(["/sbin/ipfw", "show"], None, 5, False).stdout
    verbose = cli("-v", "status", "web").out
    assert "web: packets and bytes of each rule since it was loaded\n# check-state\n" in verbose
    assert "# 4. passes for the jail\n         1           40  10052 allow tcp from any to any 80,443" in verbose
    # ipfw2.c pads each counter column to its widest value
    assert f"1 40 allow tcp from any to any 80,443 out jail {jid(web, 'web')} keep-state :default\n" in shown
    assert "10050 0  0 check-state :default\n" in shown


def test_explain_answers_from_the_live_ipfw_rules(web, cli):
    assert start(web, cli).code == 0
    res = cli("explain", "web", "tcp", "198.51.100.1:25", "--uid", "100005")
    assert res.code == 0, res.err
    assert "verdict:    block" in res.out and "deny log logdst syslog tcp from any to any 25 out jail" in res.out
    res = cli("explain", "web", "tcp", "198.51.100.1:443", "--json")
    doc = json.loads(res.out)["jailhooks-explain"]
    assert doc["verdict"] == "pass" and doc["ruleset"] == "live" and "keep-state" in doc["rule"]


# -- the sample config's packet table, under ipfw -----------------------------------------------------

@pytest.fixture(scope="module")
def ipfw_site(tmp_path_factory):
    """test_policy.py's sample config and extra jails, under ipfw (with
    net.inet.ip.fw.one_pass=0, which NAT needs), every jail started through
    the CLI, and what ipfw holds then."""
    from jailhooks.app import load_app
    from jailhooks.ipfw.prove import live

    from . import test_policy as policy
    from .conftest import Env

    root = tmp_path_factory.mktemp("ipfw-policy")
    env = Env(root)
    env.write_plugin("noX11", policy.SITE_PLUGIN)
    sample = (policy.CONTRIB / "jailhooks.toml").read_text()
    sample = sample.replace('mode = "auto"', f'mode = "simulated"\nstate_dir = "{env.state}"')
    sample = sample.replace("/usr/jails", str(root / "jails")).replace('# nat_interface = "em0"', 'nat_interface = "em0"')
    sample = sample.replace('# plugins = ["mysite.jailpolicy"]', 'plugins = ["noX11"]')
    env.config.write_text(sample + policy.EXTRA.format(root=root / "jails") + IPFW)
    one_pass(env, 0)
    jails = {"web": ("192.0.2.10", "2001:db8::10"), "mail": ("192.0.2.20", ""), "db": ("192.0.2.30", ""),
             "app": ("10.0.0.5", ""), "shop": ("", ""), "blog": ("", ""), "legacy": ("192.0.2.60", ""),
             "hosting": ("192.0.2.70", ""), "closed": ("192.0.2.71", "")}
    for name, (ip4, ip6) in jails.items():
        env.create_jail(name, ip4=ip4, ip6=ip6)
        res = env.run("-q", "run", "start", name)
        assert res.code == 0, (name, res.err)
    env.jail_root("vj")
    assert env.sim.run(["/usr/sbin/jail", "-c", "name=vj", f"path={root / 'jails' / 'vj'}", "vnet", "persist"],
                       None, 5, True).returncode == 0
    res = env.run("-q", "run", "start", "vj")
    assert res.code == 0, res.err
    state = env.host_state()
    ruleset = live(load_app(str(env.config)).host)
    blocks = {r["name"]: r["plugins"]["uids"]["uid_range"] for r in json.loads(
        env.run("status", "--json").out)["jailhooks-status"]["jail"]}
    yield ruleset, {name: state["jails"][name]["jid"] for name in jails}, blocks
    env.close()


def _ipfw_rows():
    from .test_policy import ROOT, ROWS, WORLD

    rows = []
    for row in ROWS:
        if row[:5] == ("shop", ROOT, WORLD, 25, "tcp"):
            row = row[:5] + (False,)  # what a UID match cannot see, ipfw's jail match does: shop's root is held
        rows.append(row)
    return rows


@pytest.mark.parametrize("jail,who,dst,port,proto,passes", _ipfw_rows(),
                         ids=[f"{r[0]}-{r[1]}-{r[2]}:{r[3]}/{r[4]}" for r in _ipfw_rows()])
def test_the_sample_policy_under_ipfw(ipfw_site, jail, who, dst, port, proto, passes):
    from .test_policy import ADDR, LOCAL

    ruleset, jids, blocks = ipfw_site
    uid = blocks[jail][0] + 5 if who == "user" else who
    pkt = Packet("lo0" if dst in LOCAL else "em0", "out", proto, ADDR[jail], dst, dport=port, uid=uid)
    v = ruleset.test(pkt, jids[jail] if proto in ("tcp", "udp") else None)
    assert v.passed is passes and not v.unproven, v.decided_by()
    if jail == "app" and passes:  # NAT'ed: it leaves with the NAT address, as under pf
        assert v.translated[1].src == "203.0.113.5"


@pytest.mark.parametrize("port,passes", [(443, True), (22, False), (25, False)])
def test_the_sample_vnet_jail_under_ipfw(ipfw_site, port, passes):
    """vj's packets as they enter the host from its own stack (no socket
    here), and, when they pass, as they leave it: translated."""
    from .test_policy import WORLD

    ruleset = ipfw_site[0]
    entering = ruleset.test(Packet("epair0a", "in", "tcp", "192.0.2.50", WORLD, dport=port))
    assert entering.passed is passes and not entering.unproven, entering.decided_by()
    if passes:
        leaving = ruleset.test(Packet("em0", "out", "tcp", "192.0.2.50", WORLD, dport=port))
        assert leaving.passed and leaving.translated[1].src == "203.0.113.50"


def test_another_jails_root_switched_into_a_uid_block_keeps_its_own_jails_rules(ipfw_site):
    """pf's documented limit (test_policy.py): blog's root running as one of
    shop's UIDs gets shop's rules there.  ipfw matches the prison: blog's."""
    from .test_policy import HOST, WORLD

    ruleset, jids, blocks = ipfw_site
    pkt = Packet(None, "out", "tcp", HOST, WORLD, dport=443, uid=blocks["shop"][0] + 5)
    assert not ruleset.test(pkt, jids["blog"]).passed  # blog may send 25, not 443


def test_a_rule_jailhooks_did_not_load_in_a_jails_range_stops_its_start(web, cli):
    admins_allow_all(web, 10020)
    res = cli("run", "prestart", "web")
    assert res.code == 65
    assert "ipfw rule 10020 is in its range 10000-10099 but jailhooks did not load it for this jail" in res.err
    assert [line[:5] for line in listed(web)] == ["10020", "65535", "65535"]  # nothing loaded, nothing removed


def test_check_finds_a_jail_whose_own_exec_created_replaced_ours(env, cli):
    conf = env.root / "jail.conf"
    env.write_config(IPFW, f'[managers]\njail_conf = "{conf}"\n', WEB.format(root=env.jail_root("web")))
    lines = [line for line in cli("install", "jail.conf").out.splitlines() if line.startswith("exec.")]
    assert any(line.startswith("exec.created") for line in lines)
    conf.write_text("\n".join(lines) + '\nweb {\n\tip4.addr = 192.0.2.10;\n\texec.created = "/bin/true";\n}\n'
                    'other {\n\tip4.addr = 192.0.2.11;\n}\n')
    report = cli("check")
    assert "jail web: exec.created does not run jailhooks" in report.out
    assert "jail other:" not in report.out  # the lines install printed (with --config) are found as they are
    assert [line for line in report.out.splitlines() if "does not run jailhooks" in line] == [
        line for line in report.out.splitlines() if "jail web: exec.created" in line]


def test_a_disabled_ipfw_fails_the_start_and_check_says_so(web, cli):
    assert web.sim.run(["/sbin/sysctl", "net.inet.ip.fw.enable=0"], None, 5, True).returncode == 0
    res = cli("run", "prestart", "web")
    assert res.code == 1 and "decided by no rule (ipfw is not enabled)" in res.err
    report = cli("check")
    assert report.code == 1 and "error   ipfw: ipfw is not enabled (simulated host)" in report.out


def test_a_failed_rerun_on_a_running_jail_puts_its_previous_rules_back(web, cli):
    assert start(web, cli).code == 0
    before = [line for line in listed(web) if line.startswith("100")]
    assert before and all(10050 <= int(line[:5]) <= 10099 for line in before)
    web.write_config(IPFW, WEB.format(root=web.jail_root("web")).replace("port = [80, 443]", "port = [80, 443, 8443]"))
    assert web.sim.run(["/sbin/ipfw", "-q", "add", "100", "allow", "ip", "from", "any", "to", "any"],
                       None, 5, True).returncode == 0
    res = cli("run", "prestart", "web")  # a re-run: the jail runs; the new rules are loaded, not enforced
    assert res.code == 1 and "its ipfw rules are loaded but not enforced" in res.err
    assert "reload the previous ipfw rules" in res.out + res.err
    assert [line for line in listed(web) if line.startswith("100")] == before  # the old half, and only it
    assert list(web.host_state()["ipfw"]["tables"]) == ["jh_web_u1"]


# -- NAT and port forwards: ipfw's in-kernel nat -------------------------------------------------------

APP = ('[saddr]\nnat_interface = "em0"\n[jail.{name}]\npath = "{root}"\nip4 = ["{ip}"]\n[jail.{name}.saddr]\n'
       'nat = "203.0.113.5"\n[jail.{name}.pf]\nallow = [{{ proto = "tcp", port = 443 }}]\n')
FORWARD = 'rdr = [{ proto = "tcp", port = 8080, to_port = 80, from = "198.51.100.0/24" }]\n'
WORLD, CLIENT, OTHER = "198.51.100.1", "198.51.100.7", "192.0.2.99"


def one_pass(env, value: int) -> None:
    assert env.sim.run(["/sbin/sysctl", f"net.inet.ip.fw.one_pass={value}"], None, 5, True).returncode == 0


def nat_config(env) -> list[str]:
    return env.sim.run(["/sbin/ipfw", "nat", "show", "config"], None, 5, False).stdout.splitlines()


def live_verdict(env, pkt: Packet, jail_id):
    from jailhooks.app import load_app
    from jailhooks.ipfw.prove import live

    return live(load_app(str(env.config)).host).test(pkt, jail_id)


@pytest.fixture
def app(env):
    env.write_config(IPFW, APP.format(name="app", root=env.jail_root("app"), ip="10.0.0.5") + FORWARD)
    one_pass(env, 0)
    return env


def test_a_natd_jail_leaves_with_the_nat_address_and_gets_its_forwarded_port(app, cli):
    assert start(app, cli, "app", ip4="10.0.0.5").code == 0
    assert nat_config(app) == ["ipfw nat 9999 config ip 203.0.113.5",  # shared by the jails on that address
                               "ipfw nat 10000 config ip 203.0.113.5 redirect_port tcp 10.0.0.5:80 8080"]
    j = jid(app, "app")
    out = live_verdict(app, Packet("em0", "out", "tcp", "10.0.0.5", WORLD, dport=443, uid=0), j)
    assert out.action == "pass" and not out.unproven
    assert out.translated[1].src == "203.0.113.5"  # it leaves with the NAT address
    assert live_verdict(app, Packet("em0", "out", "tcp", "10.0.0.5", WORLD, dport=25, uid=0), j).action == "block"
    # the forward: from its peers only; the others reach the host's own port 8080, untranslated
    states: dict = {}
    inbound = live_verdict(app, Packet("em0", "in", "tcp", CLIENT, "203.0.113.5", sport=50001, dport=8080), None)
    assert inbound.action == "pass" and (inbound.translated[1].dst, inbound.translated[1].dport) == ("10.0.0.5", 80)
    from jailhooks.app import load_app
    from jailhooks.ipfw.prove import live

    rs = live(load_app(str(app.config)).host)
    rs.test(Packet("em0", "in", "tcp", CLIENT, "203.0.113.5", sport=50001, dport=8080), None, states)
    reply = rs.test(Packet("em0", "out", "tcp", "10.0.0.5", CLIENT, sport=80, dport=50001), j, states)
    assert reply.action == "pass" and (reply.translated[1].src, reply.translated[1].sport) == ("203.0.113.5", 8080)
    stranger = live_verdict(app, Packet("em0", "in", "tcp", OTHER, "203.0.113.5", sport=50001, dport=8080), None)
    assert stranger.translated is None and stranger.rule.number == 65535  # not translated: the host's rules decide
    res = cli("explain", "app", "tcp", f"{WORLD}:443")
    assert "translated: rule 10060 nat 9999 ip from 10.0.0.5 to any out xmit em0 (from there on: 203.0.113.5 -> " \
           f"{WORLD} port 443)" in res.out and "verdict:    pass\n" in res.out
    app.remove_jail("app")
    assert cli("run", "poststop", "app").code == 0
    assert nat_config(app) == ["ipfw nat 9999 config ip 203.0.113.5"]  # the jail's own instance goes with it
    res = cli("sync")
    assert res.code == 0 and "sync: ipfw: deleted the shared nat instance 9999, which no jail uses" in res.out
    assert nat_config(app) == []


def test_sync_after_a_flush_puts_a_natd_jails_rules_back_on_its_instances(app, cli):
    assert start(app, cli, "app", ip4="10.0.0.5").code == 0
    assert app.sim.run(["/sbin/ipfw", "-q", "-f", "flush"], None, 5, True).returncode == 0  # rules go, nat stays
    assert cli("check", "app").code == 1
    app.sim.clear_log()
    res = cli("sync")
    assert res.code == 0, res.err
    assert cli("check", "app").code == 0
    out = live_verdict(app, Packet("em0", "out", "tcp", "10.0.0.5", WORLD, dport=443, uid=0), jid(app, "app"))
    assert out.action == "pass" and out.translated[1].src == "203.0.113.5"


def test_a_load_configures_only_the_nat_instances_that_are_not_as_they_should_be():
    """A reconfig unhooks an instance for a moment (ip_fw_nat.c nat44_config):
    a jail's load leaves alone the shared instance the other jails use."""
    from jailhooks.ipfw.render import Rendered

    text = ('# jailhooks ipfw rules of jail "app": 10050-10099 (jid 1)\nnat 9999 config ip 203.0.113.5\n'
            'nat 10000 config ip 203.0.113.5 redirect_port tcp 10.0.0.5:80 8080\nadd 10050 check-state\n')
    rendered = Rendered.from_text(text)
    assert rendered.forwards() == 10000
    assert [line for line in rendered.script({}) if line.startswith("nat ")] == rendered.nats
    shown = {9999: "ipfw nat 9999 config ip 203.0.113.5", 10000: "ipfw nat 10000 config ip 203.0.113.5"}
    assert [line for line in rendered.script(shown) if line.startswith("nat ")] == [rendered.nats[1]]


def test_jails_that_leave_with_one_address_share_one_nat_instance(env, cli):
    env.write_config(IPFW, APP.format(name="app", root=env.jail_root("app"), ip="10.0.0.5"),
                     APP.format(name="api", root=env.jail_root("api"), ip="10.0.0.6").replace("[saddr]\n"
                                                                                              'nat_interface = "em0"\n', ""))
    one_pass(env, 0)
    assert start(env, cli, "app", ip4="10.0.0.5").code == 0
    assert start(env, cli, "api", ip4="10.0.0.6").code == 0
    assert nat_config(env) == ["ipfw nat 9999 config ip 203.0.113.5"]  # one link table: no alias port twice
    assert sum(1 for line in listed(env) if " nat 9999 ip from 10.0.0.6 to any out xmit em0" in line) == 1
    res = cli("sync")
    assert res.code == 0 and "shared nat instance" not in res.out and nat_config(env) == ["ipfw nat 9999 config ip 203.0.113.5"]


def test_a_natd_jail_needs_one_pass_off_and_loads_nothing_without(app, cli):
    one_pass(app, 1)
    res = cli("run", "prestart", "app")
    assert res.code == 78
    assert "jail app: its NAT under ipfw needs net.inet.ip.fw.one_pass=0 (it is 1)" in res.err
    assert [line[:5] for line in listed(app)] == ["65535", "65535"] and nat_config(app) == []


def test_why_one_pass_must_be_off(app, cli):
    """With one_pass 1, ipfw lets a packet through once nat has seen it: the
    shared instance's rule on the jails' address would pass whatever comes
    to that address, the host's own services included."""
    assert start(app, cli, "app", ip4="10.0.0.5").code == 0
    ssh = Packet("em0", "in", "tcp", OTHER, "203.0.113.5", sport=50002, dport=22)
    assert live_verdict(app, ssh, None).action == "block"  # one_pass 0: untranslated, on to the default deny
    one_pass(app, 1)
    v = live_verdict(app, ssh, None)
    assert v.action == "pass" and v.rule.text == "nat 9999 ip from any to 203.0.113.5 in recv em0"
    report = cli("check", "app")  # and check says the jail is no longer enforced, and why
    assert report.code == 1 and "jail app: not enforced: net.inet.ip.fw.one_pass is not 0" in report.out


def test_a_vnet_jail_is_filtered_as_it_enters_and_translated_as_it_leaves(env, cli):
    vnet = APP.format(name="vj", root=env.jail_root("vj"), ip="192.0.2.50")
    env.write_config(IPFW, vnet.replace('ip4 = ["192.0.2.50"]\n', 'ip4 = ["192.0.2.50"]\nvnet = true\n'))
    one_pass(env, 0)
    for phase in ("prestart", "created", "poststart"):
        if phase == "created":
            assert env.sim.run(["/usr/sbin/jail", "-c", "name=vj", f"path={env.jail_root('vj')}", "vnet",
                                "persist"], None, 5, True).returncode == 0
        res = cli("run", phase, "vj")
        assert res.code == 0, res.err
    entering = Packet(None, "in", "tcp", "192.0.2.50", WORLD, dport=443)  # from its epair, no socket on the host
    assert live_verdict(env, entering, None).action == "pass"
    assert live_verdict(env, entering._replace(dport=25), None).action == "block"
    leaving = live_verdict(env, Packet("em0", "out", "tcp", "192.0.2.50", WORLD, dport=443), None)
    assert leaving.action == "pass" and leaving.translated[1].src == "203.0.113.5"


def test_a_natd_jail_whose_default_is_pass_is_translated_too(env, cli):
    """pf's nat translates all a jail sends, whatever its filter says; under
    ipfw what no rule decided is passed through the translation."""
    config = APP.format(name="app", root=env.jail_root("app"), ip="10.0.0.5") + 'default = "pass"\n'
    env.write_config(IPFW, config)
    one_pass(env, 0)
    assert start(env, cli, "app", ip4="10.0.0.5").code == 0
    v = live_verdict(env, Packet("em0", "out", "tcp", "10.0.0.5", WORLD, dport=22, uid=0), jid(env, "app"))
    assert v.action == "pass" and v.translated[1].src == "203.0.113.5"


def test_a_jail_named_like_the_nat_lock_starts(env, cli):
    """The host's nat lock sits beside the jails' own locks (NAME.lock): a
    jail named ipfw-nat must not wait for itself."""
    env.write_config(IPFW, APP.format(name="ipfw-nat", root=env.jail_root("ipfw-nat"), ip="10.0.0.5"))
    one_pass(env, 0)
    res = start(env, cli, "ipfw-nat", ip4="10.0.0.5")
    assert res.code == 0, res.err


# -- what ipfw logged: the security log ----------------------------------------------------------------

def test_a_logged_packet_reaches_the_security_log_and_log_tells_which_jail(web, cli):
    assert start(web, cli).code == 0
    sent = cli("sim", "send", "web", "tcp", "198.51.100.1:25", "--uid", "100005")
    assert sent.out.startswith("block:") and "logged to the security log" in sent.out, sent.out
    assert "logged" not in cli("sim", "send", "web", "tcp", "198.51.100.1:443").out  # a pass that does not log
    # ip_fw_log.c's line, as syslogd writes it
    (line,) = (web.state / "simhost" / "security").read_text().splitlines()
    assert line.endswith(" simhost kernel: ipfw: 10051 Deny TCP 192.0.2.10:40000 198.51.100.1:25 out via em0")
    (r,) = json.loads(cli("log", "--json").out)["jailhooks-log"]
    assert (r["jail"], r["user"], r["verdict"], r["direction"], r["proto"], r["dst"], r["port"], r["section"]) == \
        ("web", "unknown", "block", "out", "tcp", "198.51.100.1", 25, "1. blocks for the jail's users")
    assert r["rule"].startswith("10051 deny log logdst syslog tcp from any to any 25 out jail ")
    assert " web unknown block out on em0 tcp 192.0.2.10 -> 198.51.100.1:25; rule: 10051 deny" in cli("log").out


def test_syslog_lines_as_ip_fw_log_writes_them():
    import datetime

    from jailhooks.ipfw.syslog import parse

    now = datetime.datetime(2026, 1, 2, 12, 0, 0)
    e = parse("Dec 31 23:59:58 jh1 kernel: ipfw: 10055 Deny TCP 10.0.0.5:40000 198.51.100.1:25 out via em0", now)
    assert (e.rule, e.verdict, e.proto, e.src, e.sport, e.dst, e.dport, e.direction, e.iface) == \
        (10055, "block", "tcp", "10.0.0.5", 40000, "198.51.100.1", 25, "out", "em0")
    assert datetime.datetime.fromtimestamp(e.time).year == 2025  # syslogd's time has no year: the last Dec 31
    e = parse("Jan  2 11:00:00 jh1 kernel: ipfw: 10061 SkipTo 10070 UDP [2001:db8::10]:5353 [2001:db8::1]:53 "
              "out via em0", now)
    assert (e.verdict, e.proto, e.src, e.dst, e.dport) == ("pass", "udp", "2001:db8::10", "2001:db8::1", 53)
    # syslogd -O rfc5424 (fprintlog_rfc5424): <PRI>1, microseconds; LOG_SECURITY | LOG_INFO is 110
    e = parse("<110>1 2026-01-02T11:00:00.500000+00:00 jh1 kernel - - - ipfw: 7 Accept ICMP:8.0 192.0.2.10 "
              "198.51.100.1 out via em0", now)
    assert (e.rule, e.verdict, e.proto, e.dport) == (7, "pass", "icmp", 0)
    assert e.time == datetime.datetime(2026, 1, 2, 11, 0, 0, 500000, datetime.timezone.utc).timestamp()
    assert parse("Jan  2 11:00:00 jh1 sshd[1]: Accepted publickey for root", now) is None
    assert parse("Jan  2 11:00:00 jh1 kernel: ipfw: limit 100 reached on entry 10055", now) is None


def test_learn_then_suggest_then_lock_down_under_ipfw(env, cli):
    """As under pf (test_pflog.py): what the learn mode logged, suggested,
    applied and restarted, passes exactly; the security log has no UIDs."""
    try:
        import tomllib
    except ModuleNotFoundError:  # Python < 3.11
        import tomli as tomllib
    from .test_pflog import LEARN

    root = env.jail_root("web")
    env.write_config(IPFW, LEARN.format(root=root, mode="learn", extra=""))
    assert start(env, cli).code == 0
    for proto, dest, uid in (("tcp", "198.51.100.1:8443", "80"), ("udp", "192.0.2.53:53", "0"),
                             ("tcp", "198.51.100.1:8443", "0")):
        sent = cli("sim", "send", "web", proto, dest, "--uid", uid)
        assert sent.out.startswith("pass:") and "logged to the security log" in sent.out, sent.out
    assert cli("sim", "send", "web", "tcp", "198.51.100.1:23").out.startswith("block:")  # explicit: still blocked
    out = cli("suggest", "web").out
    assert out.startswith("# jailhooks suggest web: 2 flow(s) from 3 packet(s) logged in learn mode")
    assert '{ proto = "tcp", to = "198.51.100.1", port = 8443 },  # 2 packet(s); users: unknown' in out
    suggested = tomllib.loads(out)["allow"]
    extra = "".join(f', {{ proto = "{a["proto"]}", to = "{a["to"]}", port = {a["port"]} }}' for a in suggested)
    env.write_config(IPFW, LEARN.format(root=root, mode="enforce", extra=extra))
    env.remove_jail("web")
    assert cli("run", "poststop", "web").code == 0
    assert start(env, cli).code == 0
    j = jid(env, "web")

    def verdict(proto, dst, port):
        return live_verdict(env, Packet("em0", "out", proto, "192.0.2.10", dst, dport=port, uid=80), j).action

    assert [verdict("tcp", "198.51.100.1", 8443), verdict("udp", "192.0.2.53", 53)] == ["pass", "pass"]
    assert [verdict("tcp", "198.51.100.2", 8443), verdict("tcp", "198.51.100.1", 8080),
            verdict("udp", "192.0.2.54", 53), verdict("tcp", "198.51.100.1", 23)] == ["block"] * 4


def test_log_follow_under_ipfw_tails_the_security_log(web, cli):
    assert start(web, cli).code == 0
    assert cli("sim", "send", "web", "tcp", "198.51.100.1:25", "--uid", "100005").code == 0  # before: not shown
    follow = web.popen("log", "--follow", "--count", "1", "--json")
    try:
        ready = follow.stderr.readline()
        assert ready.startswith("jailhooks: log: following ") and ready.rstrip().endswith("security (Ctrl-C to stop)")
        assert cli("sim", "send", "web", "tcp", "198.51.100.2:25", "--uid", "100005").code == 0
        r = json.loads(follow.stdout.readline())
        assert (r["jail"], r["verdict"], r["dst"], r["section"]) == \
            ("web", "block", "198.51.100.2", "1. blocks for the jail's users")
        assert follow.wait(timeout=60) == 0
    finally:
        follow.kill()
        follow.wait()
    assert [c for c in web.sim.commands() if c[0] == "tail"] == [
        ["tail", "-F", "-n", "0", str(web.state / "simhost" / "security")]]
