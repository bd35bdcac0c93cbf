"""Fail closed on every path: a jail never runs, or keeps running, without
its rules; no value from outside becomes a rule; a lease is never handed to
two jails.  Each test drives the CLI or a shim as a user or an attacker would."""
from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest

from jailhooks.managers import install as integrations

from .conftest import REPO
from .test_managers import host, iocage_hook, run_like_jail8  # noqa: F401 (host: a fixture)


# -- names that look like options ---------------------------------------------------------------

@pytest.mark.parametrize("name", ["--help", "-h", "--version", "--dry-run"])
def test_a_jail_named_like_an_option_never_starts_through_an_old_hook_line(host, name):
    """An old jail.conf line without "--": jail(8) substitutes the name, and
    jailhooks must refuse (non-zero) so that jail(8) aborts the start."""
    res = run_like_jail8("/usr/local/bin/jailhooks run prestart $name", name, host.wrapper)
    assert res.returncode == 64, res.stdout + res.stderr
    assert "put -- before the names" in res.stderr and "Usage" not in res.stdout


@pytest.mark.parametrize("name", ["--help", "-h"])
def test_the_printed_lines_and_the_shims_keep_the_name_a_name(host, name):
    for line in integrations.jail_conf_lines("/usr/local/bin/jailhooks"):
        assert " -- $name" in line
        res = run_like_jail8(line.split('"')[1], name, host.wrapper)
        assert res.returncode == 65 and "may not start with '-'" in res.stderr  # refused as a bad name
    res = iocage_hook(host, "prestart", f"'{name}'")
    assert res.returncode == 65, res.stderr
    assert host.host_state()["pf"]["anchors"] == {}


def test_run_help_still_helps_a_person(cli):
    assert cli("run", "--help").code == 0


def test_install_apply_upgrades_old_hook_lines_in_place(host, cli, tmp_path):
    conf = tmp_path / "jail.conf"
    program = integrations.command(str(host.config))
    old = [line.replace(" -- $name", " $name") for line in integrations.jail_conf_lines(program)]
    conf.write_text("\n".join(old) + "\nweb {\n\tip4.addr = 192.0.2.10;\n}\n")
    host.config.write_text(host.config.read_text().replace(str(host.fixture_root / "jail.conf"), str(conf)))
    assert cli("install", "jail.conf", "--apply").code == 0
    text = conf.read_text()
    assert text.count("run prestart") == 1 and "run prestart -- $name" in text


# -- destroy of a running jail ----------------------------------------------------------------------

def test_destroy_of_a_running_jail_is_refused_unless_forced(env, cli):
    env.write_config(f'[fib]\nmode = "exclusive"\n[jail.web]\npath = "{env.jail_root("web")}"\nip4 = "192.0.2.10"\n')
    env.sim.run(["/sbin/sysctl", "net.fibs=4"], None, 5, True)
    env.create_jail("web", ip4="192.0.2.10")
    assert cli("run", "start", "web").code == 0
    before = cli("status", "--json", "web").jails()
    res = cli("run", "destroy", "web")
    assert res.code == 64 and "jail web is running (jid 1): stop it before destroy, or use --force" in res.err
    assert cli("status", "--json", "web").jails() == before  # lease, FIB and anchor kept
    assert cli("run", "destroy", "--force", "web").code == 0
    assert cli("status", "--json", "web").jails()[0]["uid_range"] is None


# -- plugins that would be ignored ---------------------------------------------------------------

@pytest.mark.parametrize("marker", ["wrapper=True", "hookwrapper=True"])
def test_a_wrapper_hook_implementation_is_refused_at_load(env, cli, marker):
    module = f"refuser_{marker.split('=')[0]}"
    env.write_plugin(module, "from jailhooks import hookimpl\n"
                             f"@hookimpl({marker})\n"
                             "def jailhooks_prestart(ctx):\n"
                             "    raise RuntimeError('this jail may not start')\n"
                             "    yield\n")
    env.write_config('[jail.web]\nip4 = "192.0.2.10"\n')
    env.config.write_text(f'plugins = ["{module}"]\n' + env.config.read_text())
    res = cli("run", "start", "web")
    assert res.code == 78
    assert f"plugin {module} (config): wrapper hook implementations are not supported (jailhooks_prestart)" \
        in res.err
    assert env.host_state()["pf"]["anchors"] == {}


# -- a running jail keeps its rules ------------------------------------------------------------------

START = '[jail.web]\npath = "{root}"\nip4 = "192.0.2.10"\n[jail.web.pf]\nallow = [{{ proto = "tcp", port = {port} }}]\n'


def test_a_failed_rerun_of_start_on_a_running_jail_keeps_its_previous_anchor(env, cli):
    root = env.jail_root("web")
    env.write_config(START.format(root=root, port=443))
    env.create_jail("web", ip4="192.0.2.10")
    assert cli("run", "start", "web").code == 0
    before = env.anchor("jailhooks/web")
    env.write_config(START.format(root=root, port=22))  # a new policy ...
    env.sim.add_fault(["jail", "-m"], rc=1, stderr="jail: web: some failure\n")  # ... and a later step fails
    res = cli("run", "start", "web")
    assert res.code == 1 and "reload the previous anchor jailhooks/web" in res.err
    assert env.anchor("jailhooks/web") == before  # its last good rules, not none
    env.sim.clear_faults()
    report = cli("check", "web")  # it runs on its previous rules, not on what the config says now
    assert report.code == 1
    assert ("jail web: not enforced: pass tcp to any port 22 (from policy) as root: pf would block it, the policy says "
            "pass; decided by anchor jailhooks/web: block drop out log (user) quick from <jail_web>") in report.out


def test_a_failing_poststart_after_jail8_created_the_jail_takes_the_rules_away(env, cli):
    env.write_config(START.format(root=env.jail_root("web"), port=443))
    assert cli("run", "prestart", "web").code == 0
    env.create_jail("web", ip4="192.0.2.10")
    env.sim.add_fault(["jail", "-m"], rc=1)
    assert cli("run", "poststart", "web").code == 1  # jail(8) now removes the jail ...
    assert env.anchor("jailhooks/web") is None  # ... and no rule stays for its address


def test_loaded_means_the_rules_start_loads_are_there(env, cli):
    env.write_config(START.format(root=env.jail_root("web"), port=443))
    env.create_jail("web", ip4="192.0.2.10")
    assert cli("run", "start", "web").code == 0
    assert env.sim.run(["/sbin/pfctl", "-a", "jailhooks/web", "-F", "rules"], None, 5, True).returncode == 0
    status = cli("status", "--json", "web").jails()[0]
    assert status["anchor_loaded"] is False and status["rules"] == 0
    res = cli("check", "web")
    assert res.code == 1 and "jail web runs without the rules of its anchor jailhooks/web" in res.out
    assert cli("run", "poststart", "web").code == 1
    assert cli("sync").code == 0
    assert cli("status", "--json", "web").jails()[0]["anchor_loaded"] is True


def test_check_without_a_name_finds_every_running_jail_without_its_rules(env, cli):
    env.write_config(START.format(root=env.jail_root("web"), port=443) + '[jail.db]\nip4 = "192.0.2.30"\n')
    for name, ip in (("web", "192.0.2.10"), ("db", "192.0.2.30")):
        env.create_jail(name, ip4=ip)
        assert cli("run", "start", name).code == 0
    assert env.sim.run(["/sbin/pfctl", "-a", "jailhooks/db", "-F", "all"], None, 5, True).returncode == 0
    res = cli("check")
    assert res.code == 1
    assert "jail db runs without the rules of its anchor jailhooks/db" in res.out
    assert "jail web runs without" not in res.out


# -- a registry that cannot be opened ------------------------------------------------------------------

@pytest.mark.parametrize("damage", ["garbage", "directory"])
def test_stop_takes_the_rules_away_when_the_registry_cannot_be_opened(env, cli, damage):
    env.write_config(START.format(root=env.jail_root("web"), port=443))
    env.create_jail("web", ip4="192.0.2.10")
    assert cli("run", "start", "web").code == 0
    db = env.state / "registry.sqlite"
    for extra in env.state.glob("registry.sqlite-*"):
        extra.unlink()
    db.unlink()
    if damage == "garbage":
        db.write_bytes(b"SQLite format 2\x00" + b"\xff" * 4000)
    else:
        db.mkdir()
    env.sim.add_state("192.0.2.10", "198.51.100.7", "jailhooks:web")
    res = cli("run", "stop", "web")
    assert res.code != 0
    assert f"registry {db}" in res.err and "the jail's lease was not updated" in res.err
    assert env.anchor("jailhooks/web") is None and env.host_state()["states"] == []
    # and the way up fails closed: nothing is loaded
    res = cli("run", "start", "web")
    assert res.code != 0 and env.anchor("jailhooks/web") is None


# -- values from outside --------------------------------------------------------------------------------

@pytest.mark.parametrize("name", ["evil\npass out quick all\n#", "a b", "x;pass", "-x", "1234"])
def test_names_from_jls_never_reach_a_rule(env, cli, name):
    """A jailed root with children.max names its child jails; the kernel takes
    almost any name without a dot."""
    env.write_config(START.format(root=env.jail_root("web"), port=443))
    env.create_jail("web", ip4="192.0.2.10")
    res = env.sim.run(["/usr/sbin/jail", "-c", f"name={name}", f"path={env.jail_root('web')}", "ip4.addr=192.0.2.10",
                       "persist"], None, 5, True)
    if res.returncode != 0:
        pytest.skip(f"the simulated jail(8) refuses this name: {res.stderr}")
    res = cli("sync")  # web is synced; the jail it cannot govern makes sync fail, named
    assert res.code == 1, res.err
    assert "jls lists a jail jailhooks refuses, left alone" in res.err
    assert "has no rules: jailhooks refuses its name" in res.err and "\npass out quick all" not in res.err
    anchors = env.host_state()["pf"]["anchors"]
    assert list(anchors) == ["jailhooks/web"]
    assert not any("pass out quick all" in line for a in anchors.values() for line in a["filter"])
    status = cli("status", "--json")
    assert status.code == 0 and [r["jail"] for r in status.jails()] == ["web"]


FACTS = '''
from jailhooks import hookimpl
from jailhooks.context import Jail

@hookimpl(tryfirst=True)
def jailhooks_jail_facts(name):
    return {answer}
'''


def with_plugin(env, source: str, config: str) -> str:
    """SOURCE as a plugin module, listed in the config (then CONFIG); its name."""
    module = f"plugin_{abs(hash(source))}"
    env.write_plugin(module, source)
    env.write_config(f'plugins = ["{module}"]', config)
    return module


@pytest.mark.parametrize("answer,message", [
    ("Jail('mail', ip4=('192.0.2.20',))", "facts for jail web name another jail (mail)"),
    ("Jail(name, ip4=('192.0.2.10\\\\npass out quick all',))", "facts of jail web"),
    ("Jail(name, path='../../etc')", "facts of jail web"),
    ("{'name': name}", "returned dict, not a Jail"),
])
def test_facts_from_a_plugin_are_validated(env, cli, answer, message):
    with_plugin(env, FACTS.format(answer=answer), '[jail.web]\nip4 = "192.0.2.10"\n')
    res = cli("run", "start", "web")
    assert res.code == 65 and message in res.err
    assert env.host_state()["pf"]["anchors"] == {}
    assert cli("run", "stop", "web").code == 65  # the way down goes on to the next source, and says so


RULES = '''
from jailhooks import hookimpl
from jailhooks.pf.rules import Filter, Nat

class Sneaky(Filter):
    pass

@hookimpl
def jailhooks_pf_rules(ctx):
    return [{answer}]
'''


@pytest.mark.parametrize("answer,message", [
    ('Filter(proto="tcp")._replace(proto=("tcp\\\\npass out quick all\\\\n#",))', "invalid Filter: protocol"),
    ('Filter._make(("pass", "out", (), ("any\\\\npass out quick all",), (), (), False, False))', "invalid Filter"),
    ('Nat("em0", "203.0.113.5")._replace(interface="em0 all\\\\npass")', "invalid Nat"),
    ('Sneaky(action="block")._replace(action="pass out quick all #")', "invalid Filter: action"),
    ('{"action": "block", "proto": "tcp", "port": 25}', "returned dict, not a Filter, Nat or Rdr"),
])
def test_rules_from_a_plugin_are_validated_when_the_anchor_is_rendered(env, cli, answer,
                                                                      message):
    module = with_plugin(env, RULES.format(answer=answer),
                         '[pf]\ndefault = "pass"\n[jail.web]\nip4 = "192.0.2.10"\n')
    res = cli("run", "start", "web")
    assert res.code == 65 and f"plugin {module}: " in res.err and message in res.err, res.err
    assert env.host_state()["pf"]["anchors"] == {}


# -- unknown jails, the host's own root, the pool's bound ------------------------------------------------

def test_an_unknown_jail_is_refused_before_anything_is_touched(env, cli):
    for args in (("run", "start", "nosuch"), ("run", "stop", "nosuch"), ("status", "nosuch"), ("check", "nosuch")):
        res = cli(*args)
        assert res.code == 68 and "unknown jail nosuch" in res.err, args
    assert env.host_state()["pf"]["anchors"] == {} and cli("status", "--json").jails() == []
    assert cli("run", "start", "nosuch", "--ip4", "192.0.2.99").code == 0  # described on the command line


def test_a_jail_on_the_hosts_root_never_touches_the_hosts_files(env, cli, tmp_path):
    env.write_config('[jail.svc]\npath = "/"\nip4 = "192.0.2.10"\n')
    res = cli("run", "start", "svc")
    assert res.code == 0, res.err
    assert "jail path is / (the host's root): etc/pw.conf and etc/adduser.conf left alone" in res.out


def test_the_pool_ends_where_pf_can_still_name_the_block(env, cli):
    env.write_config('[uids]\nfirst = 4294966294\nlast = 4294967294\nblock = 1000\n[jail.web]\nip4 = "192.0.2.10"\n')
    res = cli("check")
    assert res.code == 78 and "uids.last: 4294967294 is outside 1..4294967293" in res.err
    env.write_config('[uids]\nfirst = 4294966294\nlast = 4294967293\nblock = 1000\n[jail.web]\nip4 = "192.0.2.10"\n')
    assert cli("run", "start", "web").code == 0
    assert any("user 4294966293 >< 4294967294" in r for r in env.anchor("jailhooks/web")["filter"])


# -- leases lost or shared ------------------------------------------------------------------------------

LOST = '[jail.web]\npath = "{web}"\nip4 = "192.0.2.10"\n[jail.mail]\npath = "{mail}"\nip4 = "192.0.2.20"\n'


def _lose_registry(env):
    for f in env.state.glob("registry.sqlite*"):
        f.unlink()


@pytest.mark.parametrize("how", ["removed", "truncated"])
def test_a_lost_registry_is_never_a_fresh_start_and_recover_rebuilds_it(env, cli, how):
    env.write_config(LOST.format(web=env.jail_root("web"), mail=env.jail_root("mail")))
    assert cli("run", "create", "web").code == 0 and cli("run", "create", "mail").code == 0
    before = {r["jail"]: r["uid_range"] for r in cli("status", "--json").jails()}
    _lose_registry(env)
    if how == "truncated":
        (env.state / "registry.sqlite").write_bytes(b"")  # sqlite takes an empty file as a new database
    pw_mail = (env.root / "jails/mail/etc/pw.conf").read_text()
    # mail starts first: it would get web's block 100000-100999, and web's users would become mail's
    res = cli("run", "start", "mail")
    assert res.code == 65 and "run `jailhooks registry recover`" in res.err
    assert (env.root / "jails/mail/etc/pw.conf").read_text() == pw_mail
    assert cli("status", "--json", "mail").jails()[0]["uid_range"] is None
    res = cli("registry", "recover")
    assert res.code == 0 and "2 lease(s) rebuilt" in res.out
    assert {r["jail"]: r["uid_range"] for r in cli("status", "--json").jails()} == before
    assert cli("registry", "recover").out.startswith("registry recover: 0 lease(s) rebuilt")


def test_a_new_jail_never_gets_a_block_another_jail_holds(env, cli):
    env.write_config(LOST.format(web=env.jail_root("web"), mail=env.jail_root("mail")))
    assert cli("run", "create", "web").code == 0
    _lose_registry(env)
    res = cli("run", "create", "mail")  # mail is new, but web's files say it holds 100000-100999
    assert res.code == 65 and "are held by jail web" in res.err
    assert cli("registry", "recover").code == 0
    assert cli("run", "create", "mail").code == 0
    assert cli("status", "--json", "mail").jails()[0]["uid_range"] == [101000, 101999]


def test_recover_refuses_claims_a_jail_could_forge(env, cli):
    env.write_config(LOST.format(web=env.jail_root("web"), mail=env.jail_root("mail")))
    assert cli("run", "create", "web").code == 0 and cli("run", "create", "mail").code == 0
    _lose_registry(env)
    pw = env.root / "jails/mail/etc/pw.conf"  # mail's root rewrites its marker to take web's block
    pw.write_text(pw.read_text().replace("101000-101999 of jail mail", "100000-100999 of jail mail"))
    res = cli("registry", "recover")
    assert res.code == 65 and "jails mail and web both claim UIDs 100000-100999" in res.err
    assert [r["uid_range"] for r in cli("status", "--json").jails()] == [None, None]  # nothing recovered
    pw.write_text(pw.read_text().replace("100000-100999 of jail mail", "100000-100999 of jail web"))
    res = cli("registry", "recover")
    assert res.code == 65 and "jail mail: its etc/pw.conf claims the block of jail web" in res.err


@pytest.mark.parametrize("lease,message", [
    ({"jail": "evil\npass all", "uid_first": 200000, "uid_last": 200999}, "may only contain letters"),
    ({"jail": "a", "uid_first": 65000, "uid_last": 65999}, "reserved ids 65533 (nogroup), 65534 (nobody)"),
    ({"jail": "a", "uid_first": -5, "uid_last": 10}, "not a block within 1000-4294967293"),
    ({"jail": "a", "uid_first": 4294967000, "uid_last": 4294967296}, "not a block within"),
    ({"jail": "a", "uid_first": 200000, "uid_last": 200999, "fib": -1}, "FIB -1 is not a number"),
    ({"jail": "a", "uid_first": "200000", "uid_last": 200999}, "are not integers"),
    ("not a lease", "not a JSON object"),
])
def test_registry_import_validates_every_lease(env, cli, tmp_path, lease, message):
    f = tmp_path / "leases.json"
    f.write_text(json.dumps({"jailhooks_registry": 1, "leases": [lease]}))
    res = cli("registry", "import", str(f))
    assert res.code == 65 and message in res.err, res.err
    assert cli("status", "--json").jails() == []


def test_registry_import_refuses_a_shared_exclusive_fib(env, cli, tmp_path):
    f = tmp_path / "leases.json"
    f.write_text(json.dumps({"jailhooks_registry": 1, "leases": [
        {"jail": "a", "uid_first": 200000, "uid_last": 200999, "fib": 2, "fib_exclusive": True},
        {"jail": "b", "uid_first": 201000, "uid_last": 201999, "fib": 2, "fib_exclusive": True}]}))
    res = cli("registry", "import", str(f))
    assert res.code == 65 and "FIB 2 of jail b is exclusive, and jail a holds it too" in res.err


def test_a_jail_made_again_after_destroy_or_release_is_not_taken_for_a_lost_lease(env, cli):
    env.write_config(LOST.format(web=env.jail_root("web"), mail=env.jail_root("mail")))
    assert cli("run", "create", "web").code == 0
    assert cli("run", "destroy", "web").code == 0
    assert "# jailhooks: UIDs" not in (env.root / "jails/web/etc/pw.conf").read_text()
    assert cli("run", "create", "web").code == 0
    assert cli("release", "web").code == 0
    assert cli("run", "create", "web").code == 0


# -- FIBs never pass routes on -----------------------------------------------------------------------

FIBS = '''[fib]
mode = "exclusive"
connected = [{{ net = "192.0.2.0/24", interface = "em0" }}]
[jail.a]
path = "{a}"
ip4 = "192.0.2.10"
[jail.a.fib]
gateway = "192.0.2.1"
[jail.b]
path = "{b}"
ip4 = "192.0.2.20"
'''


@pytest.mark.parametrize("how", ["destroy", "release"])
def test_a_freed_fib_keeps_no_routes_for_its_next_owner(env, cli, how):
    env.write_config(FIBS.format(a=env.jail_root("a"), b=env.jail_root("b")))
    env.sim.run(["/sbin/sysctl", "net.fibs=2"], None, 5, True)
    assert cli("run", "create", "a").code == 0 and cli("run", "prestart", "a").code == 0
    fib = cli("status", "--json", "a").jails()[0]["fib"]
    assert "default4" in env.host_state()["routes"][str(fib)]
    # a's config loses its default route before a goes: the route must go all the same
    env.write_config(FIBS.format(a=env.jail_root("a"), b=env.jail_root("b")).replace('gateway = "192.0.2.1"', ""))
    assert cli(*(["run", "destroy"] if how == "destroy" else ["release"]), "a").code == 0
    assert env.host_state()["routes"][str(fib)] == {}
    assert cli("run", "create", "b").code == 0 and cli("run", "prestart", "b").code == 0
    assert cli("status", "--json", "b").jails()[0]["fib"] == fib
    assert "default4" not in env.host_state()["routes"][str(fib)]  # b's config gives it no default route


def test_a_new_owner_never_inherits_routes_left_in_its_fib(env, cli):
    env.write_config(FIBS.format(a=env.jail_root("a"), b=env.jail_root("b")))
    env.sim.run(["/sbin/sysctl", "net.fibs=2"], None, 5, True)
    for cmd in (["-n", "add", "-net", "192.0.2.0/24", "-iface", "em0", "-fib", "1"],
                ["-n", "add", "default", "192.0.2.1", "-fib", "1"]):  # left by hand, or by an older jailhooks
        assert env.sim.run(["/sbin/route", *cmd], None, 5, True).returncode == 0
    assert cli("run", "create", "b").code == 0 and cli("run", "prestart", "b").code == 0
    assert "default4" not in env.host_state()["routes"]["1"]
    env.sim.run(["/sbin/route", "-n", "add", "default", "192.0.2.1", "-fib", "1"], None, 5, True)
    res = cli("check", "b")
    assert res.code == 1 and "FIB 1 has a default route (-4) that its config does not give it" in res.out


# -- one jail, one name --------------------------------------------------------------------------

def test_an_iocage_jail_has_one_name_whichever_one_is_typed(host, cli):
    """iocage's hook runs as ioc-NAME (the kernel's name); an admin types NAME."""
    assert iocage_hook(host, "prestart", "ioc-nextcloud").returncode == 0
    lease = cli("status", "--json", "ioc-nextcloud").jails()[0]["uid_range"]
    anchor = host.anchor("jailhooks/ioc-nextcloud")
    res = cli("run", "prestart", "nextcloud")
    assert res.code == 0 and "ioc-nextcloud: prestart: uids: UIDs" in res.out
    assert len(cli("status", "--json").jails()) == 1  # no second lease
    assert cli("status", "--json", "nextcloud").jails()[0]["uid_range"] == lease
    assert host.anchor("jailhooks/ioc-nextcloud") == anchor and host.anchor("jailhooks/nextcloud") is None
    assert cli("render", "nextcloud").out == cli("render", "ioc-nextcloud").out


# -- files: never damaged, never hung on, never readable by others -------------------------------------

def test_pw_conf_bytes_survive_and_a_huge_one_is_refused_untouched(env, cli):
    root = env.jail_root("web")
    original = b"# d\xe9faut du site\ndefaultshell = sh\n"
    (root / "etc" / "pw.conf").write_bytes(original)
    env.write_config(f'[jail.web]\npath = "{root}"\nip4 = "192.0.2.10"\n')
    assert cli("run", "create", "web").code == 0
    written = (root / "etc" / "pw.conf").read_bytes()
    assert written.startswith(original) and b"minuid = 100000" in written
    assert cli("run", "destroy", "web").code == 0
    huge = b"# x\n" * 300_000
    (root / "etc" / "pw.conf").write_bytes(huge)
    res = cli("run", "create", "web")
    assert res.code == 65 and "is larger than 1 MiB; left as it is" in res.err
    assert (root / "etc" / "pw.conf").read_bytes() == huge
    assert cli("status", "--json", "web").jails()[0]["uid_range"] is None  # undone


def test_undo_restores_pw_conf_byte_for_byte(env, cli):
    root = env.jail_root("web")
    original = b"# \xff\xfe not UTF-8\nminuid = 5000\n"
    (root / "etc" / "pw.conf").write_bytes(original)
    env.write_plugin("failpre", "from jailhooks import hookimpl\n@hookimpl\ndef jailhooks_prestart(ctx):\n"
                                "    raise RuntimeError('no')\n")
    env.write_config(f'[jail.web]\npath = "{root}"\nip4 = "192.0.2.10"\n')
    env.config.write_text('plugins = ["failpre"]\n' + env.config.read_text())
    assert cli("run", "prestart", "web").code == 1
    assert (root / "etc" / "pw.conf").read_bytes() == original


@pytest.mark.parametrize("kind", ["directory", "fifo"])
def test_a_config_path_that_is_not_a_file_is_one_line_and_exit_78(env, cli, tmp_path, kind):
    path = tmp_path / "weird.toml"
    if kind == "directory":
        path.mkdir()
    else:
        os.mkfifo(path)
    proc = subprocess.run([sys.executable, "-m", "jailhooks", "--config", str(path), "status"],
                          capture_output=True, text=True, timeout=30, env={**os.environ, "PYTHONPATH": str(REPO)})
    assert proc.returncode == 78 and proc.stderr == f"jailhooks: {path}: not a regular file\n"


@pytest.mark.parametrize("kind", ["self", "loop", "fifo"])
def test_a_jail_conf_that_includes_itself_or_a_fifo_is_one_line(env, cli, tmp_path, kind):
    import os

    conf = tmp_path / "jail.conf"
    other = tmp_path / "other.conf"
    if kind == "self":
        conf.write_text(f'.include "{conf}";\nweb {{ ip4.addr = 192.0.2.10; }}\n')
    elif kind == "loop":
        conf.write_text(f'.include "{other}";\n')
        other.write_text(f'.include "{conf}";\n')
    else:
        os.mkfifo(other)
        conf.write_text(f'.include "{other}";\n')
    env.write_config(f'[managers]\njail_conf = "{conf}"\njail_conf_d = "{tmp_path / "none"}"\n')
    res = cli("run", "start", "web")
    assert res.code == 65 and len(res.err.strip().splitlines()) == 1, res.err
    assert ("includes a file that is being read" in res.err) if kind != "fifo" else ("not a regular file" in res.err)


def test_jailhooks_own_files_are_private_whatever_the_umask(env, tmp_path):
    import os
    import stat

    env.write_config(START.format(root=env.jail_root("web"), port=443))
    env.create_jail("web", ip4="192.0.2.10")
    proc = subprocess.run(["/bin/sh", "-c", 'umask 000; exec "$@"', "sh", sys.executable, "-m",
                           "jailhooks", "--config", str(env.config), "run", "start", "web"],
                          capture_output=True, text=True, timeout=60,
                          env={**os.environ, "PYTHONPATH": str(REPO)})
    assert proc.returncode == 0, proc.stderr
    for path in env.state.rglob("*"):
        if "simhost" in path.parts:  # the stand-in for FreeBSD, made by this test too
            continue
        mode = stat.S_IMODE(path.lstat().st_mode)
        assert mode & 0o077 == 0, (path, oct(mode))


def test_a_destroy_killed_halfway_converges_when_run_again(env, cli):
    """Killed after the registry released the lease but before the jail's
    record went: a re-run of destroy must still remove the record, or the
    next create of that jail is taken for a lost registry."""
    from jailhooks.registry.sqlite import SqliteRegistry

    env.write_config(LOST.format(web=env.jail_root("web"), mail=env.jail_root("mail")))
    assert cli("run", "create", "web").code == 0
    reg = SqliteRegistry(str(env.state), 5)
    reg.release("web")  # where the killed run stopped
    reg.close()
    assert cli("run", "destroy", "web").code == 0
    assert "# jailhooks: UIDs" not in (env.root / "jails/web/etc/pw.conf").read_text()
    assert cli("run", "create", "web").code == 0
