"""Enforced, not just loaded: seven ways a jail could run unfiltered while
jailhooks said ok, each driven through the CLI on the simulated host, and
`explain`.  What pf does with the jail's packets is read back from the live
ruleset (pfctl -a '*' -s rules|nat) and evaluated (jailhooks/pf/prove.py)."""
from __future__ import annotations

import json

import pytest

WEB = '[jail.web]\npath = "{root}"\nip4 = "192.0.2.10"\n[jail.web.pf]\nallow = [{{ proto = "tcp", port = 443 }}]\n'
HOOKS = 'nat-anchor "jailhooks/*"\nrdr-anchor "jailhooks/*"\n'


@pytest.fixture
def web(env, cli):
    env.write_config(WEB.format(root=env.jail_root("web")))
    return env


def start(env, cli, name="web", ip4="192.0.2.10"):
    """What jail(8) does: exec.prestart, the jail is made, exec.poststart."""
    first = cli("run", "prestart", name)
    if first.code != 0:
        return first
    env.create_jail(name, ip4=ip4)
    return cli("run", "poststart", name)


def load_main(env, tmp_path, text: str) -> None:
    conf = tmp_path / "pf.conf"
    conf.write_text(text)
    assert env.sim.run(["/sbin/pfctl", "-f", str(conf)], None, 5, True).returncode == 0


# -- 1. the main ruleset does not reach the anchor ---------------------------------------------------

@pytest.mark.parametrize("main,decider", [
    (HOOKS + "pass out all\n", "main ruleset: pass out all flags S/SA keep state"),  # iocage's NAT file: no hook
    (HOOKS + "pass out quick all\nanchor \"jailhooks/*\"\n",
     'main ruleset: pass out quick all flags S/SA keep state (before anchor "jailhooks/*")'),
    ("set skip on em0\n" + HOOKS + "anchor \"jailhooks/*\"\n",
     "not proven: set skip on em0 (the packet may leave on it, and pf does not filter it)"),
])
def test_start_fails_closed_when_the_live_ruleset_does_not_apply_the_anchor(web, cli, tmp_path, main, decider):
    load_main(web, tmp_path, main)
    res = start(web, cli)
    assert res.code == 1
    assert "jail web: its rules are loaded but pf does not enforce them: " in res.err
    assert decider in res.err
    assert web.anchor("jailhooks/web") is None  # undone: a jail that does not start leaves no rules


def test_check_and_sync_name_the_rule_that_decides_instead(web, cli, tmp_path):
    assert start(web, cli).code == 0
    assert "ok      firewall: jail web: its policy is enforced by the live ruleset" in cli("check").out
    load_main(web, tmp_path, HOOKS + "pass out quick proto tcp all\nanchor \"jailhooks/*\"\n")
    report = cli("check")
    assert report.code == 1
    assert ("error   pf: jail web: not enforced: default block: tcp to any port 9 as root: pf would pass it, the "
            "policy says block; decided by main ruleset: pass out quick proto tcp all flags S/SA keep state "
            '(before anchor "jailhooks/*")') in report.out
    doc = json.loads(cli("check", "--json").out)["jailhooks-check"]
    assert doc["ok"] is False
    assert cli("sync").code == 1


def test_an_unmodelled_rule_that_could_decide_is_not_proven_never_guessed(web, cli, tmp_path):
    load_main(web, tmp_path, HOOKS + "pass out quick on egress all\nanchor \"jailhooks/*\"\n")
    res = start(web, cli)
    assert res.code == 1
    assert "not proven: main ruleset: pass out quick on egress all" in res.err


def test_the_contrib_baseline_proves_every_probe(web, cli, tmp_path):
    from .conftest import REPO

    load_main(web, tmp_path, (REPO / "contrib" / "pf.conf").read_text())
    assert start(web, cli).code == 0


# -- 2. a plugin raising BaseException -----------------------------------------------------------------

@pytest.mark.parametrize("raising", ["sys.exit(0)", "raise KeyboardInterrupt", "raise BaseException('x')"])
def test_a_plugin_raising_baseexception_fails_the_start_closed(env, cli, raising):
    env.write_plugin("quitter", f"import sys\nfrom jailhooks import hookimpl\n\n@hookimpl\n"
                                f"def jailhooks_pf_rules(ctx):\n    {raising}\n")
    env.write_config('plugins = ["quitter"]\n' + WEB.format(root=env.jail_root("web")))
    res = cli("run", "prestart", "web")
    assert res.code == 1 and "Traceback" not in res.err
    assert "plugin quitter: raised" in res.err
    assert env.anchor("jailhooks/web") is None
    assert cli("render", "web").code != 0


# -- 3. values are copied, never trusted --------------------------------------------------------------

# A str whose methods lie: it formats and prints as other text (a rule after a newline),
# equals everything, and iterates as "any".  Plugins below hand it to every field.
HOSTILE_STR = '''
EVIL = "\\npass out quick all #"

class S(str):
    def __format__(self, spec):
        return str.__str__(self) + EVIL
    def __str__(self):
        return str.__str__(self) + EVIL
    def __eq__(self, other):
        return True
    def __ne__(self, other):
        return False
    def __hash__(self):
        return 0
    def __iter__(self):
        return iter(["any"])
'''

HOSTILE = HOSTILE_STR + '''
from jailhooks import hookimpl
from jailhooks.pf.rules import Filter

@hookimpl
def jailhooks_pf_rules(ctx):
    return [Filter(action=S("pass"), proto=S("tcp"), to=[S("192.0.2.1")], port=S("443"))]
'''


def test_str_subclasses_from_a_plugin_are_copied_before_anything_formats_them(env, cli):
    env.write_plugin("hostile", HOSTILE)
    env.write_config('plugins = ["hostile"]\n' + WEB.format(root=env.jail_root("web")))
    res = cli("render", "web")
    assert res.code == 0, res.err
    assert "pass out quick all #" not in res.out and "\npass out quick all" not in res.out
    assert "pass out quick proto tcp from <jail_web> to 192.0.2.1 port 443" in res.out
    assert start(env, cli).code == 0
    assert not any(rule.startswith("pass out quick all") for rule in env.anchor("jailhooks/web")["filter"])


def test_an_action_whose_eq_is_always_true_is_refused(env, cli):
    env.write_plugin("sneaky", HOSTILE.replace('action=S("pass")', 'action=S("allow")'))
    env.write_config('plugins = ["sneaky"]\n' + WEB.format(root=env.jail_root("web")))
    res = cli("render", "web")
    assert res.code == 65 and "action 'allow' is not pass or block" in res.err


# -- 4. one address, one jail ---------------------------------------------------------------------------

def test_a_second_jail_with_the_same_address_is_refused(web, cli):
    assert start(web, cli).code == 0
    web.write_config(WEB.format(root=web.jail_root("web")) + f'[jail.copy]\npath = "{web.jail_root("copy")}"\n'
                     'ip4 = "192.0.2.10"\n')
    res = cli("run", "start", "copy")
    assert res.code == 65
    assert "jail copy: address 192.0.2.10 is also held by running jail web: one address, one jail" in res.err
    assert web.anchor("jailhooks/copy") is None
    web.create_jail("copy", ip4="192.0.2.10")  # started by hand, without jailhooks
    assert "address 192.0.2.10 is also held by running jail copy" in cli("check").out


# -- 5. kernel jails jailhooks refuses -------------------------------------------------------------------

def test_check_names_every_running_jail_it_cannot_govern(web, cli):
    assert start(web, cli).code == 0
    for name in ("x;pass", "-h"):
        assert web.sim.run(["/usr/sbin/jail", "-c", f"name={name}", "path=/", "persist"], None, 5, True).returncode == 0
    report = cli("check")
    assert report.code == 1
    assert "error   jls: running jail 'x;pass' has no rules: jailhooks refuses its name" in report.out
    assert "error   jls: running jail '-h' has no rules" in report.out


# -- 6. [pf] parent changed while the jail runs -----------------------------------------------------------

def test_stop_flushes_the_anchor_where_it_was_loaded(web, cli):
    assert start(web, cli).code == 0
    web.write_config('[pf]\nparent = "other"\n' + WEB.format(root=web.jail_root("web")))
    web.remove_jail("web")
    assert cli("run", "poststop", "web").code == 0
    assert web.anchor("jailhooks/web") is None


# -- 7. a missing config file --------------------------------------------------------------------------

def test_a_missing_config_file_is_exit_78_not_built_in_defaults(env, cli, tmp_path):
    missing = tmp_path / "nowhere.toml"
    for args in (["check"], ["status"], ["run", "start", "web"]):
        res = cli("--config", str(missing), *args)
        assert res.code == 78, args
        assert "file not found: copy the sample configuration there" in res.err and str(missing) in res.err
    assert cli("--config", str(missing), "--help").code == 0


# -- explain -------------------------------------------------------------------------------------------

def test_explain_gives_the_verdict_and_the_rule_that_decides(web, cli):
    assert start(web, cli).code == 0
    res = cli("explain", "web", "tcp", "198.51.100.1:443")
    assert res.code == 0, res.err
    assert "verdict:    pass (keeps state: replies pass)" in res.out
    assert ('decided by: anchor jailhooks/web: pass out quick proto tcp from <jail_web> to any port = https flags '
            'S/SA keep state label "jailhooks:web"') in res.out
    assert "section:    4. passes for the jail, from plugin policy" in res.out
    doc = json.loads(cli("explain", "web", "tcp", "198.51.100.1:25", "--json").out)["jailhooks-explain"]
    assert (doc["verdict"], doc["proven"], doc["section"]) == ("block", True, "5. block everything else the jail sends")
    assert cli("explain", "web", "tcp", "198.51.100.1").code == 64  # tcp needs a port
    assert cli("explain", "nosuch", "tcp", "198.51.100.1:1").code == 68


def test_explain_rendered_answers_before_the_jail_ever_started(env, cli):
    env.write_config(WEB.format(root=env.jail_root("web")))
    res = cli("explain", "web", "udp", "198.51.100.1:53", "--rendered")
    assert res.code == 0 and "verdict:    block" in res.out
    assert "ruleset:    what start would load" in res.out


# -- leases from outside stay inside the pool ---------------------------------------------------------

def test_recover_refuses_a_forged_marker_outside_the_pool(env, cli):
    env.write_config(WEB.format(root=env.jail_root("web")))
    assert cli("run", "create", "web").code == 0
    for f in env.state.glob("registry.sqlite*"):
        f.unlink()
    pw = env.root / "jails/web/etc/pw.conf"  # web's root claims host users 1000-1999
    pw.write_text(pw.read_text().replace("100000-100999 of jail web", "1000-1999 of jail web"))
    res = cli("registry", "recover")
    assert res.code == 65
    assert "UIDs 1000-1999 lie outside the pool [uids] first..last (100000-999999999)" in res.err
    assert cli("status", "--json", "web").jails()[0]["uid_range"] is None


@pytest.mark.parametrize("data,message", [
    (b'{"jailhooks_registry": 1, "leases": [{"jail": "a", "uid_first": 1000, "uid_last": 1999}]}',
     "UIDs 1000-1999 lie outside the pool"),
    (b'\xff\xfe{"leases": []}', "not UTF-8 text; nothing was imported"),
    (b"[" * 100000 + b"]" * 100000, "nothing was imported"),
    (b'{"jailhooks_registry": 2, "leases": []}', "not version 1 of a jailhooks registry export"),
    (b'{"leases": []}', "not version 1 of a jailhooks registry export"),
])
def test_registry_import_refuses_what_is_not_an_export_of_this_pool(env, cli, tmp_path, data, message):
    f = tmp_path / "leases.json"
    f.write_bytes(data)
    res = cli("registry", "import", str(f))
    assert res.code == 65 and message in res.err and "Traceback" not in res.err, res.err
    assert cli("status", "--json").jails() == []


def test_a_registry_replaced_while_jails_run_is_reported_and_sync_keeps_the_rules(env, cli):
    env.write_config(WEB.format(root=env.jail_root("web")) + '[jail.web.pf.users]\nblock = [{ proto = "tcp", port = 25 }]\n')
    assert start(env, cli).code == 0
    loaded = env.anchor("jailhooks/web")
    assert any("user 99999 >< 101000" in rule for rule in loaded["filter"])
    for f in env.state.glob("registry.sqlite*"):
        f.unlink()
    report = cli("check")
    assert report.code == 1
    assert ("jail web runs with UIDs 100000-100999 (its etc/pw.conf), the registry holds no lease for it: run "
            "`jailhooks registry recover`") in report.out
    res = cli("sync")
    assert res.code == 1 and "anchor jailhooks/web kept as loaded" in res.err
    assert env.anchor("jailhooks/web") == loaded  # not rewritten without the users' rules
    assert cli("registry", "recover").code == 0 and cli("sync").code == 0


def test_a_create_that_fails_after_allocating_gives_the_block_back(env, cli):
    env.write_config(WEB.format(root=env.jail_root("web")))
    (env.jail_root("web") / "etc" / "pw.conf").mkdir()
    res = cli("run", "create", "web")
    assert res.code == 65 and "etc/pw.conf is not a regular file" in res.err
    assert "undone: uids: release UIDs 100000-100999" in res.err
    assert cli("status", "--json", "web").jails()[0]["uid_range"] is None


def test_an_anchor_too_large_to_read_back_is_refused_before_it_is_loaded(env, cli, monkeypatch):
    from jailhooks import jailfs

    monkeypatch.setattr(jailfs, "MAX_FILE", 2048)
    env.write_config(WEB.format(root=env.jail_root("web")).replace(
        'port = 443 }]', 'port = 443 }' + "".join(f', {{ proto = "tcp", to = "198.51.100.{i}", port = 22 }}'
                                                   for i in range(1, 40)) + "]"))
    res = cli("run", "prestart", "web")
    assert res.code == 65 and "over the 2048 that jailhooks keeps and reads back; nothing was loaded" in res.err
    assert env.anchor("jailhooks/web") is None


# -- clear refusals -----------------------------------------------------------------------------------

def test_clear_refusals_instead_of_a_traceback(env, cli):
    env.write_config(WEB.format(root=env.jail_root("web")))
    assert cli("render", "nosuch").code == 68  # as run
    assert cli("check", "").code == 64
    assert cli("run", "create", "web").code == 0
    (env.jail_root("web") / "etc" / "passwd").mkdir()
    res = cli("check", "web")
    assert res.code == 1 and "etc/passwd is not a regular file" in res.out and "Traceback" not in res.err
    (env.jail_root("web") / "etc" / "passwd").rmdir()
    (env.jail_root("web") / "etc" / "passwd").write_text("big:*:99999999999:0::0:0:x:/:/bin/sh\n")
    res = cli("check", "web")
    assert res.code == 1 and "has id 99999999999, beyond 4294967295" in res.out


def test_a_plugins_invalid_rule_is_exit_65_for_render_and_status_too(env, cli):
    env.write_plugin("badrule", "from jailhooks import hookimpl\nfrom jailhooks.pf.rules import Filter\n\n"
                                "@hookimpl\ndef jailhooks_pf_rules(ctx):\n    return [Filter(port=99999)]\n")
    env.write_config('plugins = ["badrule"]\n' + WEB.format(root=env.jail_root("web")))
    for args in (["render", "web"], ["run", "prestart", "web"]):
        res = cli(*args)
        assert res.code == 65 and "plugin badrule: port 99999 is outside 1-65535" in res.err, args
    res = cli("status")  # every jail is shown; the exit status and stderr say what is wrong
    assert res.code == 65 and "web" in res.out and "plugin badrule: port 99999 is outside 1-65535" in res.err
    doc = json.loads(cli("status", "--json").out)["jailhooks-status"]["jail"][0]
    assert "port 99999" in doc["plugins"]["pf"]["policy_error"]


def test_terminal_escapes_from_outside_are_shown_escaped(env, cli):
    env.write_plugin("noisy", "from jailhooks import hookimpl\n\n@hookimpl\ndef jailhooks_prestart(ctx):\n"
                              "    raise RuntimeError('\\x1b]0;owned\\x07 oops')\n")
    env.write_config('plugins = ["noisy"]\n' + WEB.format(root=env.jail_root("web")))
    res = cli("run", "prestart", "web")
    assert res.code == 1 and "\x1b" not in res.err and "\\x1b]0;owned\\x07 oops" in res.err


# -- hierarchical jails ---------------------------------------------------------------------------------

def test_a_child_jail_is_governed_like_any_other(env, cli):
    env.write_config(WEB.format(root=env.jail_root("web"))
                     + f'[jail."web.app"]\npath = "{env.jail_root("web.app")}"\nip4 = "192.0.2.15"\n'
                     '[jail."web.app".pf]\nallow = [{ proto = "tcp", port = 25 }]\n')
    assert start(env, cli).code == 0
    assert start(env, cli, "web.app", "192.0.2.15").code == 0
    assert env.anchor("jailhooks/web.app")["tables"] == {"jail_x_" + _digest("web.app"): ["192.0.2.15"]}
    report = cli("check")
    assert report.code == 0, report.out
    assert "jail web.app: its policy is enforced by the live ruleset" in report.out
    assert "verdict:    pass" in cli("explain", "web.app", "tcp", "198.51.100.1:25").out
    env.remove_jail("web.app")
    assert cli("run", "poststop", "web.app").code == 0 and env.anchor("jailhooks/web.app") is None


def _digest(name: str) -> str:
    import hashlib

    return hashlib.sha256(name.encode()).hexdigest()[:12]


def test_no_jail_name_can_equal_another_jails_shortened_anchor():
    from jailhooks import validate

    long_name = "a" * 80
    short = validate.anchor_component(long_name)
    assert ".-" in short and len(short) <= validate.ANCHOR_COMPONENT_MAX
    with pytest.raises(ValueError):
        validate.jail_name(short)  # a child jail a jailed root names like it is refused


HOSTILE_KINDS = HOSTILE_STR + '''
from jailhooks import hookimpl
from jailhooks.pf.rules import Filter, Nat, Rdr
from jailhooks.types import Jail

class I(int):
    def __format__(self, spec):
        return "443" + EVIL
    def __str__(self):
        return "443" + EVIL

@hookimpl
def jailhooks_pf_rules(ctx):
    return [Nat(interface=S("em0"), target=S("203.0.113.5")),
            Rdr(proto=[S("tcp")], port=I(8080), to_port=I(80), peers=[S("198.51.100.0/24")]),
            Filter(direction=S("in"), proto=S("tcp"), peers=[S("198.51.100.0/24")], port=I(443))]

@hookimpl(tryfirst=True)
def jailhooks_jail_facts(name):
    if name == "web":
        return Jail(S("web"), path=S(JAILROOT), ip4=(S("10.0.0.5"),), source=S("evil"))
'''


def test_subclasses_in_every_field_of_nat_rdr_and_facts_never_reach_a_rule(env, cli):
    env.write_plugin("kinds", HOSTILE_KINDS.replace("JAILROOT", repr(str(env.jail_root("web")))))
    env.write_config('plugins = ["kinds"]\n[jail.web.pf]\nallow = [{ proto = "tcp", port = 443 }]\n')
    res = cli("render", "web")
    assert res.code == 0, res.err
    assert "pass out quick all" not in res.out.replace("block out log quick", "")
    assert "nat on em0 inet from <jail_web> to any tag JH_web -> 203.0.113.5" in res.out
    assert "rdr on em0 inet proto tcp from 198.51.100.0/24 to 203.0.113.5 port 8080 -> 10.0.0.5 port 80" in res.out
    assert all(line.isprintable() for line in res.out.splitlines())
    assert start(env, cli, ip4="10.0.0.5").code == 0
    assert not any("pass out quick all" in rule for rule in env.anchor("jailhooks/web")["filter"])


def test_a_jls_path_with_terminal_escapes_is_shown_escaped(env, cli):
    root = env.root / "jails" / "we\x1b[2Jb"
    (root / "etc").mkdir(parents=True)
    (root / "etc" / "pw.conf").mkdir()  # so that the error names the path jls gives
    assert env.sim.run(["/usr/sbin/jail", "-c", "name=evil", f"path={root}", "persist"], None, 5, True).returncode == 0
    env.write_config('[jail.evil]\n')
    res = cli("run", "create", "evil")
    assert res.code == 65
    assert "\x1b" not in res.out + res.err and "we\\x1b[2Jb/etc/pw.conf is not a regular file" in res.err


def test_the_probes_a_policy_yields():
    from jailhooks.probes import probes
    from jailhooks.pf.render import AnchorSpec, Names
    from jailhooks.policy import Filter, Nat, Rdr

    spec = AnchorSpec(Names.of("app", "jailhooks"), ip4=("10.0.0.5",), uid_range=(100000, 100999), match="address",
                      contributions=(("pf", (Filter(proto="tcp", port=443),
                                             Filter(action="block", proto="tcp", port=25, users=True),
                                             Filter(direction="in", proto="tcp", port=80),
                                             Nat(interface="em0", target="203.0.113.5"),
                                             Rdr(port=8080, to_port=80))),))
    found = [(p.what, p.packet.direction, p.packet.src, p.packet.dst, p.packet.dport, p.packet.uid,
              p.reply is not None) for p in probes(spec)]
    assert found == [
        ("pass tcp to any port 443 (from pf) as root", "out", "10.0.0.5", "198.51.100.1", 443, 0, False),
        ("pass tcp to any port 443 (from pf) as its user 100005", "out", "10.0.0.5", "198.51.100.1", 443, 100005,
         False),
        ("users' block tcp to any port 25 (from pf) as its user 100005", "out", "10.0.0.5", "198.51.100.1", 25,
         100005, False),
        ("default block: tcp to any port 9 as root", "out", "10.0.0.5", "198.51.100.1", 9, 0, False),
        ("default block: tcp to any port 9 as its user 100005", "out", "10.0.0.5", "198.51.100.1", 9, 100005, False),
        ("inbound pass tcp from 198.51.100.7 to port 80 (from pf)", "in", "198.51.100.7", "10.0.0.5", 80, None, True),
        ("port forward tcp 203.0.113.5:8080 -> 10.0.0.5:80 (from pf)", "in", "198.51.100.7", "203.0.113.5", 8080,
         None, True),
    ]
    assert {p.packet.iface for p in probes(spec)} == {"em0"}  # the NAT's interface


def test_a_pass_that_cannot_be_proven_is_a_warning_a_block_fails_closed(web, cli, tmp_path):
    """blacklistd's anchor (`anchor "blacklistd/*" in on em0`) before the jails' can only block
    what comes in on em0; with [pf] interface unset, whether an inbound connection crosses em0 is
    not known: the jail starts, warned.  A quick pass on em0 before the hook could let out what
    the policy blocks: that fails closed."""
    web.write_config(WEB.format(root=web.jail_root("web")) + 'inbound = [{ proto = "tcp", port = 80 }]\n')
    load_main(web, tmp_path, HOOKS + 'block in log all\nanchor "blacklistd/*" in on em0\nanchor "jailhooks/*"\n')
    first = cli("run", "prestart", "web")
    assert first.code == 0, first.err
    assert ('warning: inbound pass tcp from 198.51.100.7 to port 80 (from policy): not proven: main ruleset: anchor '
            '"blacklistd/*" in on em0 all (cannot evaluate: on em0: the interface the packet crosses is not known '
            '(set [pf] interface') in first.out
    web.create_jail("web", ip4="192.0.2.10")
    report = cli("check")
    assert report.code == 0 and "warning plugins" not in report.out
    assert "warning pf: jail web: not proven: inbound pass tcp" in report.out
    assert "jail web: what its policy blocks is blocked by the live ruleset" in report.out
    load_main(web, tmp_path, HOOKS + 'pass out quick on em0 all\nanchor "jailhooks/*"\n')
    res = cli("check")
    assert res.code == 1 and "not enforced: default block: tcp to any port 9 as root: not proven: main ruleset: " \
                             "pass out quick on em0 all" in res.out


def test_rules_loaded_in_a_disabled_pf_are_not_enforced(web, cli):
    assert start(web, cli).code == 0
    res = web.sim.run(["/sbin/pfctl", "-d"], None, 5, True)
    assert (res.returncode, res.stderr) == (0, "pf disabled\n")  # pfctl_disable() in pfctl.c
    assert web.sim.run(["/sbin/pfctl", "-d"], None, 5, True).stderr == "pfctl: pf not enabled\n"
    report = cli("check")
    assert report.code == 1
    assert ("not enforced: default block: tcp to any port 9 as root: pf would pass it, the policy says block; "
            "decided by pf is not enabled: it filters nothing (pfctl -e") in report.out
    web.remove_jail("web")
    res = cli("run", "prestart", "web")
    assert res.code == 1 and "pf is not enabled: it filters nothing" in res.err


def test_a_kept_file_naming_no_valid_anchor_does_not_stop_the_teardown(web, cli):
    assert start(web, cli).code == 0
    kept = web.state / "anchors" / "web.conf"
    kept.write_text('# jailhooks anchor "../_evil": generated, do not edit\n' + kept.read_text().split("\n", 1)[1])
    web.remove_jail("web")
    assert cli("run", "poststop", "web").code == 0
    assert web.anchor("jailhooks/web") is None


def test_what_a_plugin_reports_is_copied_before_check_and_explain_use_it(web, cli):
    web.write_plugin("liar", HOSTILE_STR + '''
from jailhooks import hookimpl

@hookimpl
def jailhooks_check(settings, host, registry, jail):
    return [(S("error"), S("disk on fire"))]

@hookimpl(tryfirst=True)
def jailhooks_explain(ctx, packet, rendered):
    return {"verdict": S("pass"), "proven": True, "why": S("because"), "packet": {"direction": "out", "proto": "tcp",
            "src": None, "dst": "198.51.100.1", "port": 1, "uid": 0, "iface": None}}
''')
    web.write_config('plugins = ["liar"]\n' + WEB.format(root=web.jail_root("web")))
    report = cli("check")
    assert report.code == 1  # S("error") == "ok" is True, yet it stays an error
    assert "error   liar: disk on fire\n" in report.out and "pass out quick all" not in report.out
    res = cli("explain", "web", "tcp", "198.51.100.1:1")
    assert "decided by: because\n" in res.out and "pass out quick all" not in res.out
