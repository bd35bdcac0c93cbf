"""Compiled starts (jailhooks/plan.py, replay.py): a prestart replays what the
last full prestart of the jail proved, and never a stale rule: each input is
changed in turn and the next start follows it.  Whether a start was replayed
is read from the commands it sent: the full path reads ``net.fibs`` (the
jails here have a FIB of their own), a replay does not need to (its routes
are refused by route(8) if the FIB is gone)."""
from __future__ import annotations

import marshal

import pytest

from jailhooks import plan
from jailhooks.registry.sqlite import STAMP

TYPICAL = """
[fib]
mode = "exclusive"
connected = [{{ net = "192.0.2.0/24", interface = "em0" }}]
gateway = "192.0.2.1"

[jail.web]
path = "{root}"
ip4 = "10.0.0.5"
[jail.web.pf]
allow = [{{ proto = "tcp", port = [80, 443] }}]
"""

JLS_ALL = "jls --libxo json jid"
PROOF = ["pfctl -s Running", "pfctl -a * -s rules", "pfctl -a * -s nat", "pfctl -v -s Interfaces"]
REPLAY = [JLS_ALL, "route -q -n -4 add -net 192.0.2.0/24 -iface em0 -fib 1", "route -q -n -4 add default 192.0.2.1 -fib 1",
          "pfctl -a jailhooks/web -f -", *PROOF]


@pytest.fixture(autouse=True)
def no_racy_window(monkeypatch):
    """Files here are written moments before the start that reads them; the
    racy-input rule has a test of its own."""
    monkeypatch.setattr(plan, "RACY_SECONDS", 0.0)


def commands(env) -> list[str]:
    return [" ".join(c) for c in env.sim.commands()]


def replayed(env) -> bool:
    return replayed_list(commands(env))


def replayed_list(prestart: list[str]) -> bool:
    return bool(prestart) and prestart[0].startswith(JLS_ALL) and "sysctl -n net.fibs" not in prestart


def cycle(env, cli, name="web", ip4="10.0.0.5"):
    """One start and stop as jail(8) runs them; the prestart's commands are kept."""
    env.sim.clear_log()
    res = cli("run", "prestart", name)
    prestart = commands(env)
    if res.code != 0:
        return res, prestart
    env.create_jail(name, ip4=ip4)
    for phase in ("poststart", "prestop"):
        assert cli("run", phase, name).code == 0, phase
    env.remove_jail(name)
    assert cli("run", "poststop", name).code == 0
    return res, prestart


@pytest.fixture
def web(env, cli):
    env.write_config(TYPICAL.format(root=env.jail_root("web")))
    env.sim.run(["/sbin/sysctl", "net.fibs=4"], None, 5, True)
    res, _ = cycle(env, cli)  # allocates the lease and FIB: the registry changed during it, no plan yet
    assert res.code == 0, res.err
    res, _ = cycle(env, cli)  # the first full start over settled inputs: compiles
    assert res.code == 0, res.err
    assert (env.state / "plans" / "web").is_file()
    return env


def anchor_text(env) -> str:
    return env.sim.run(["/sbin/pfctl", "-a", "jailhooks/web", "-s", "rules"], None, 5, False).stdout


def reboot(env) -> None:
    """What a reboot takes away that start puts back: the FIB's routes."""
    env.sim.run(["/sbin/route", "-q", "-n", "flush", "-fib", "1"], None, 5, True)
    env.sim.run(["/sbin/route", "-q", "-n", "-4", "delete", "-net", "192.0.2.0/24", "-fib", "1"], None, 5, True)


def test_a_start_whose_inputs_did_not_change_is_replayed_in_eight_commands(web, cli):
    reboot(web)
    res, prestart = cycle(web, cli)
    assert res.code == 0, res.err
    assert len(prestart) == len(REPLAY) and all(s.startswith(e) for s, e in zip(prestart, REPLAY)), prestart
    assert "web: prestart: pf: anchor jailhooks/web loaded and enforced" in res.out
    # what the replay loaded is what a full start loads, and it is kept for stop, check and sync
    web.sim.clear_log()
    assert cli("run", "prestart", "web").code == 0 and replayed(web)
    assert "port = https" in anchor_text(web)
    web.create_jail("web", ip4="10.0.0.5")
    assert cli("run", "poststart", "web").code == 0
    res = cli("check")
    assert res.code == 0, res.out + res.err


def test_routes_still_there_are_changed_to_the_config_as_the_full_path_does(web, cli):
    res, prestart = cycle(web, cli)
    assert res.code == 0 and replayed_list(prestart)
    assert [c.split(" -fib")[0] for c in prestart if c.startswith("route")] == [
        "route -q -n -4 add -net 192.0.2.0/24 -iface em0", "route -q -n -4 change -net 192.0.2.0/24 -iface em0",
        "route -q -n -4 add default 192.0.2.1", "route -q -n -4 change default 192.0.2.1"]


def jail_table(env) -> str:
    return env.sim.run(["/sbin/pfctl", "-a", "jailhooks/web", "-t", "jail_web", "-T", "show"], None, 5, False).stdout


def edit_config(env, old: str, new: str) -> None:
    text = env.config.read_text()
    assert old in text
    env.config.write_text(text.replace(old, new))


def test_a_config_change_is_followed_by_the_next_start(web, cli):
    edit_config(web, "port = [80, 443]", "port = [80, 443, 8443]")
    res = cli("-v", "run", "prestart", "web")
    assert res.code == 0 and f"web: not replayed: {web.config} changed: full path" in res.err
    web.create_jail("web", ip4="10.0.0.5")
    web.remove_jail("web")
    assert cli("run", "poststop", "web").code == 0
    web.sim.clear_log()
    assert cli("run", "prestart", "web").code == 0 and replayed(web)
    assert "8443" in anchor_text(web)


def test_a_lease_change_is_followed_by_the_next_start(web, cli):
    """A lease or FIB changing anywhere replaces the registry's stamp."""
    stamp = plan.fingerprint(str(web.state / STAMP))
    web.write_config(TYPICAL.format(root=web.jail_root("web")) + '[jail.db]\nip4 = "10.0.0.6"\n')
    assert cli("run", "prestart", "db").code == 0  # db's lease: a registry change
    assert plan.fingerprint(str(web.state / STAMP)) != stamp
    res, prestart = cycle(web, cli)
    assert res.code == 0 and not replayed_list(prestart)


def test_a_released_lease_is_never_replayed(web, cli):
    assert cli("run", "destroy", "web").code == 0  # the lease and FIB go back to the pool
    res, prestart = cycle(web, cli)
    assert res.code == 0 and not replayed_list(prestart)
    assert "route -q -n flush -fib 1" in prestart  # the full path took the FIB anew


def test_an_installed_plugin_is_followed_by_the_next_start(web, cli, tmp_path, monkeypatch):
    site = tmp_path / "site-packages"
    site.mkdir()
    monkeypatch.syspath_prepend(str(site))
    res, prestart = cycle(web, cli)  # sys.path changed: not the one the plan was made with
    assert res.code == 0 and not replayed_list(prestart)
    res, prestart = cycle(web, cli)
    assert replayed_list(prestart)
    dist = site / "extra-1.0.dist-info"  # installing a distribution adds its dist-info
    dist.mkdir()
    (dist / "METADATA").write_text("Metadata-Version: 2.1\nName: extra\nVersion: 1.0\n")
    res, prestart = cycle(web, cli)
    assert res.code == 0 and not replayed_list(prestart)


def test_a_site_plugin_acting_at_every_start_makes_every_start_full(env, cli):
    env.write_plugin("everystart", """
        from jailhooks import hookimpl

        @hookimpl
        def jailhooks_prestart(ctx):
            ctx.note("ran")
    """)
    env.write_config('plugins = ["everystart"]', TYPICAL.format(root=env.jail_root("web")))
    env.sim.run(["/sbin/sysctl", "net.fibs=4"], None, 5, True)
    for _ in range(3):
        res, prestart = cycle(env, cli)
        assert res.code == 0 and "everystart: ran" in res.out and not replayed_list(prestart)
    assert not (env.state / "plans" / "web").exists()


def test_a_plugin_edited_in_place_is_followed_by_the_next_start(env, cli):
    source = """
        from jailhooks import hookimpl
        from jailhooks.pf.rules import Filter

        @hookimpl
        def jailhooks_pf_rules(ctx):
            return [Filter(proto=["tcp"], to=["192.0.2.80"], port=[{port}])]
    """
    path = env.write_plugin("siterules", source.format(port=8080))
    env.write_config('plugins = ["siterules"]', TYPICAL.format(root=env.jail_root("web")))
    env.sim.run(["/sbin/sysctl", "net.fibs=4"], None, 5, True)
    for _ in range(3):
        res, prestart = cycle(env, cli)
    assert res.code == 0 and replayed_list(prestart)
    import sys

    path.write_text(path.read_text().replace("8080", "9090") + "\n# edited\n")
    sys.modules.pop("siterules", None)  # the next run in this process imports it anew, as a new process would
    res, prestart = cycle(env, cli)
    assert res.code == 0 and not replayed_list(prestart)
    env.sim.clear_log()
    assert cli("run", "prestart", "web").code == 0 and replayed(env)
    assert "9090" in anchor_text(env) and "8080" not in anchor_text(env)


def test_a_manager_file_change_is_followed_by_the_next_start(env, cli, tmp_path):
    conf = tmp_path / "jail.conf"
    root = env.jail_root("web")
    conf.write_text(f'web {{ path = "{root}"; ip4.addr = 10.0.0.5; }}\n')
    env.write_config(TYPICAL.split("[jail.web]")[0].format() + f'[managers]\njail_conf = "{conf}"\n')
    env.sim.run(["/sbin/sysctl", "net.fibs=4"], None, 5, True)
    for _ in range(3):
        res, prestart = cycle(env, cli)
        assert res.code == 0, res.err
    assert replayed_list(prestart)
    conf.write_text(f'web {{ path = "{root}"; ip4.addr = 10.0.0.9; }}\n')
    res, prestart = cycle(env, cli, ip4="10.0.0.9")
    assert res.code == 0 and not replayed_list(prestart)
    env.sim.clear_log()
    assert cli("run", "prestart", "web").code == 0 and replayed(env)
    assert "10.0.0.9" in jail_table(env) and "10.0.0.5" not in jail_table(env)


def test_a_file_the_jail_changed_is_written_again_by_the_next_start(web, cli):
    pw = web.jail_root("web") / "etc" / "pw.conf"
    written = pw.read_text()
    pw.write_text("minuid = 1000\n")  # the jail's root edits its own file
    res, prestart = cycle(web, cli)
    assert res.code == 0 and not replayed_list(prestart)
    assert pw.read_text() == written


def test_a_changed_main_ruleset_takes_the_full_path_which_fails_closed(web, cli, tmp_path):
    conf = tmp_path / "pf.conf"
    conf.write_text('nat-anchor "jailhooks/*"\nrdr-anchor "jailhooks/*"\npass out quick all\nanchor "jailhooks/*"\n')
    assert web.sim.run(["/sbin/pfctl", "-f", str(conf)], None, 5, True).returncode == 0
    res, prestart = cycle(web, cli)
    assert res.code != 0 and "pass out quick all" in res.err
    assert sum(c.startswith(JLS_ALL) for c in prestart) == 2 and "sysctl -n net.fibs" in prestart  # tried, then full
    assert anchor_text(web) == ""  # the replay undid its load, the full path refused: nothing left loaded
    assert not (web.state / "plans" / "web").exists()


def test_disabled_pf_takes_the_full_path_which_fails_closed(web, cli):
    assert web.sim.run(["/sbin/pfctl", "-d"], None, 5, True).returncode == 0
    res, _ = cycle(web, cli)
    assert res.code != 0 and "pf_enable" in res.err
    assert anchor_text(web) == ""


def test_other_jails_starting_do_not_invalidate_the_proof(web, cli):
    """At boot jails start one after the other: each loads its anchor, and the
    others' replays still hold (their anchors are left out of the proof's key)."""
    web.write_config(TYPICAL.format(root=web.jail_root("web")) + '[jail.db]\nip4 = "10.0.0.6"\n')
    for _ in range(2):
        cycle(web, cli, "db", "10.0.0.6")
    cycle(web, cli)  # the config changed: web's full path compiles again
    cli("run", "prestart", "db")
    web.create_jail("db", ip4="10.0.0.6")  # db runs, its anchor loaded
    res, prestart = cycle(web, cli)
    assert res.code == 0 and replayed_list(prestart), prestart


def test_a_rerun_on_a_running_jail_is_never_replayed(web, cli):
    assert cli("run", "prestart", "web").code == 0
    web.create_jail("web", ip4="10.0.0.5")
    web.sim.clear_log()
    res = cli("run", "prestart", "web")
    seen = commands(web)
    assert sum(c.startswith(JLS_ALL) for c in seen) == 2 and "sysctl -n net.fibs" in seen  # tried, then full
    # the full path's re-run: it reloads and proves, keeping the last good rules should that fail
    assert res.code == 0 and "loaded and enforced" in res.out
    assert not (web.state / "plans" / "web").exists()  # compiled again by the next start as jail(8) runs it


def test_an_address_held_by_a_running_jail_is_refused_by_the_full_path(web, cli):
    web.create_jail("other", ip4="10.0.0.5")
    res, prestart = cycle(web, cli)
    assert res.code == 65 and "also held by running jail other" in res.err
    assert not any(c.startswith("pfctl -a jailhooks/web -f") for c in prestart)


def test_a_step_that_fails_is_undone_and_the_full_path_decides(web, cli, monkeypatch):
    """route add fails in the replay (the FIB is gone): nothing of the replay stays."""
    from jailhooks.host import Host

    calls = []
    real = Host.route_set

    def failing(self, *args):
        calls.append(args)
        if len(calls) >= 2:
            from jailhooks.errors import CommandError

            raise CommandError(["route"], 1, "route: writing to routing socket: Invalid argument")
        return real(self, *args)

    monkeypatch.setattr(Host, "route_set", failing)
    res, prestart = cycle(web, cli)
    assert res.code != 0 and "Invalid argument" in res.err  # the full path's second route fails too: closed
    assert sum(c.startswith(JLS_ALL) for c in prestart) == 2 and prestart.count("pfctl -a jailhooks/web -f -") == 0
    assert anchor_text(web) == "" and not (web.state / "plans" / "web").exists()


@pytest.mark.parametrize("spoil", ["garbage", "group-writable", "other-jail"])
def test_a_plan_that_is_not_sound_is_ignored(web, cli, spoil):
    path = web.state / "plans" / "web"
    if spoil == "garbage":
        path.write_bytes(b"\x00not marshal")
    elif spoil == "group-writable":
        path.chmod(0o620)
    else:
        data = marshal.loads(path.read_bytes())
        data["jail"] = "db"
        path.write_bytes(marshal.dumps(data))
    res, prestart = cycle(web, cli)
    assert res.code == 0 and not replayed_list(prestart)


def test_an_input_changed_moments_before_a_compile_writes_no_plan(web, cli, monkeypatch):
    monkeypatch.setattr(plan, "RACY_SECONDS", 3600.0)  # everything here is "moments ago"
    edit_config(web, "port = [80, 443]", "port = [80, 443, 8443]")
    for _ in range(2):
        res, prestart = cycle(web, cli)
        assert res.code == 0 and not replayed_list(prestart)
    assert not (web.state / "plans" / "web").exists()
    res = cli("-v", "run", "prestart", "web")
    assert "not compiled: " in res.err and "changed moments ago" in res.err


def test_a_replayed_start_still_waits_for_the_jails_lock(web, cli):
    from jailhooks.jailfs import locked

    with locked(str(web.state / "locks"), "web.lock", 0, "held"):
        res = cli("run", "prestart", "web")
    assert res.code == 75 and "another jailhooks run holds its lock" in res.err


def test_dry_run_and_options_never_replay(web, cli):
    for args in (("--dry-run", "run", "prestart", "web"), ("run", "prestart", "--ip4", "10.0.0.5", "web")):
        web.sim.clear_log()
        cli(*args)
        assert not replayed(web), args
    assert (web.state / "plans" / "web").is_file()  # neither run forgot the plan


@pytest.mark.parametrize("text,found", [
    ('[host]\nstate_dir = "/var/db/jh"  # ours\nmode = "freebsd"\n', "/var/db/jh"),
    ('[pf]\nallow = []\n', ""),  # never mentioned: the default
    ('host.state_dir = "/x"\n', None),  # a dotted key
    ('host = { state_dir = "/x" }\n', None),  # an inline table
    ("[host]\nstate_dir = '/x'\n", None),  # a literal string
    ('[host]\nstate_dir = "/x\\ty"\n', None),  # an escape
    ('[host]\nstate_dir = "/x"\n[host]\nstate_dir = "/y"\n', None),  # twice (tomllib refuses it)
    ('[jail.web]\nstate_dir = "/x"\n', None),  # elsewhere: let the full path say what it is
])
def test_the_state_dir_is_read_plainly_or_by_tomllib(text, found):
    from jailhooks.replay import _plain_state_dir

    assert _plain_state_dir(text.encode()) == found


def test_a_config_tomllib_must_read_still_replays(env, cli):
    """state_dir in an inline table: the replay reads the file with tomllib."""
    env.config.write_text(f'host = {{ state_dir = "{env.state}", mode = "simulated", lock_timeout = 3 }}\n'
                          + TYPICAL.format(root=env.jail_root("web")))
    env.sim.run(["/sbin/sysctl", "net.fibs=4"], None, 5, True)
    for _ in range(3):
        res, prestart = cycle(env, cli)
        assert res.code == 0, res.err
    assert replayed_list(prestart)


def test_a_plan_that_stops_holding_while_the_lock_is_waited_for_is_not_replayed(web, cli, monkeypatch):
    """The inputs are checked again under the jail's lock: a destroy that
    held it released the lease the plan's rules were made for."""
    from jailhooks import jailfs, replay

    real = jailfs.locked

    def destroy_first(*args, **kwargs):
        monkeypatch.setattr(jailfs, "locked", real)
        assert cli("run", "destroy", "web").code == 0  # what held the lock meanwhile
        return real(*args, **kwargs)

    monkeypatch.setattr(jailfs, "locked", destroy_first)
    monkeypatch.setattr(replay, "load", lambda state_dir, name, why: plan.load(state_dir, name, why) or pytest.fail("no plan"))
    web.sim.clear_log()
    res = cli("run", "prestart", "web")
    # the destroy flushed the FIB it freed, and the full path, taking it anew, flushed it again;
    # a replay would have loaded the old rules with no second flush
    assert res.code == 0 and commands(web).count("route -q -n flush -fib 1") == 2, commands(web)


def test_destroy_forgets_the_plan(web, cli):
    assert cli("run", "destroy", "web").code == 0
    assert not (web.state / "plans" / "web").exists()


@pytest.mark.parametrize("fault", ["fails", "prints garbage"])
@pytest.mark.parametrize("prefix", [["jls"], ["route", "-q", "-n", "-4", "add"], ["pfctl", "-a", "jailhooks/web"],
                                    ["pfctl", "-s", "Running"], ["pfctl", "-a", "*", "-s", "rules"],
                                    ["pfctl", "-a", "*", "-s", "nat"], ["pfctl", "-v", "-s", "Interfaces"]])
def test_each_command_of_a_replay_failing_leaves_nothing_behind(web, cli, prefix, fault):
    """Each command a replay sends, failing or answering garbage in turn: the
    replay undoes its steps and the full path decides, failing closed."""
    import json

    reboot(web)  # the routes are added, not changed: a route's undo has something to do
    before = json.loads(cli("status", "--json", "web").out)
    if fault == "fails":
        web.sim.add_fault(prefix, rc=1, stderr=f"{prefix[0]}: injected failure\n")
    else:
        web.sim.add_fault(prefix, rc=0, stdout="\x00garbage{[\n")
    res = cli("run", "prestart", "web")
    web.sim.clear_faults()
    assert "Traceback" not in res.err
    if fault == "prints garbage" and res.code == 0:
        return  # a command whose output is not read (the route, the load): the start is proven all the same
    assert res.code != 0, res.out
    assert anchor_text(web) == "" and json.loads(cli("status", "--json", "web").out) == before
    assert not (web.state / "anchors" / "web.conf").exists()
    assert cli("run", "prestart", "web").code == 0 and "https" in anchor_text(web)  # the fault gone, it starts


def test_the_ipfw_backend_is_never_replayed(env, cli):
    env.write_config('[firewall]\nbackend = "ipfw"\n', TYPICAL.format(root=env.jail_root("web")))
    env.sim.run(["/sbin/sysctl", "net.fibs=4"], None, 5, True)
    env.sim.run(["/sbin/sysctl", "net.inet.ip.fw.enable=1"], None, 5, True)
    for _ in range(3):
        assert cli("run", "prestart", "web").code == 0
        cli("run", "poststop", "web")
    res = cli("-v", "run", "prestart", "web")
    assert res.code == 0 and "not compiled: the start cannot be replayed: it ran " in res.err
    assert not (env.state / "plans" / "web").exists()


def test_a_shared_registry_is_never_replayed(env, cli, pg_url):
    env.write_config(f'[registry]\nurl = "{pg_url}"\nhost = "jh1"\n', TYPICAL.format(root=env.jail_root("web")))
    env.sim.run(["/sbin/sysctl", "net.fibs=4"], None, 5, True)
    for _ in range(3):
        res, prestart = cycle(env, cli)
        assert res.code == 0 and not replayed_list(prestart), res.err
    res = cli("-v", "run", "prestart", "web")
    assert "not compiled: a shared registry: another host can change the jail's lease" in res.err
    assert "web: not replayed: no plan: full path" in res.err


def test_iocage_hooks_are_replayed_and_still_run_the_previous_hook(env, cli, tmp_path):
    """iocage runs ``jailhooks hook iocage PHASE ioc-NAME [PREVIOUS...]``: the
    prestart is replayed like jail(8)'s, and the jail's own hook still runs after."""
    marker = tmp_path / "previous-ran"
    previous = tmp_path / "previous.sh"
    previous.write_text(f"#!/bin/sh\necho ran >> {marker}\n")
    previous.chmod(0o755)
    env.write_config(TYPICAL.format(root=env.jail_root("ioc-web")).replace("[jail.web", '[jail."ioc-web"'))
    env.sim.run(["/sbin/sysctl", "net.fibs=4"], None, 5, True)
    for _ in range(3):
        env.sim.clear_log()
        res = cli("hook", "iocage", "prestart", "ioc-web", str(previous))
        prestart = commands(env)
        assert res.code == 0, res.err
        env.create_jail("ioc-web", ip4="10.0.0.5")
        env.remove_jail("ioc-web")
        assert cli("hook", "iocage", "poststop", "ioc-web").code == 0
    assert replayed_list(prestart), prestart
    assert marker.read_text() == "ran\n" * 3


@pytest.fixture
def web_and_db(web, cli):
    """web compiled, db running beside it (its anchor loaded before web's start)."""
    web.write_config(TYPICAL.format(root=web.jail_root("web")) + '[jail.db]\nip4 = "10.0.0.6"\n')
    for _ in range(2):
        cycle(web, cli, "db", "10.0.0.6")
    cycle(web, cli)  # the config changed: web's full path compiles again
    assert cli("run", "prestart", "db").code == 0
    web.create_jail("db", ip4="10.0.0.6")
    return web


def test_a_rule_loaded_by_hand_into_another_jails_anchor_is_caught(web_and_db, cli, tmp_path):
    """Other jails' anchors are left out of the proof's key, but each must hold
    what jailhooks loaded there: a `pass out quick all` put into jailhooks/db
    by hand (evaluated before jailhooks/web) sends web's start down the full
    path, whose proof refuses it."""
    env = web_and_db
    (tmp_path / "db.conf").write_text("pass out quick all\n")
    assert env.sim.run(["/sbin/pfctl", "-a", "jailhooks/db", "-f", str(tmp_path / "db.conf")],
                       None, 5, True).returncode == 0
    res, prestart = cycle(env, cli)
    assert res.code != 0 and "jailhooks/db" in res.err, res.err
    assert sum(c.startswith(JLS_ALL) for c in prestart) == 2  # the replay tried, the full path refused
    assert anchor_text(env) == ""


def test_an_anchor_jailhooks_has_no_listing_of_is_proven_in_full_until_sync_keeps_one(web_and_db, cli):
    env = web_and_db
    (env.state / "anchors" / "db.listed").unlink()  # as after an upgrade from a jailhooks without them
    res, prestart = cycle(env, cli)
    assert res.code == 0 and not replayed_list(prestart)
    assert cli("sync").code == 0
    assert (env.state / "anchors" / "db.listed").is_file()
    res, prestart = cycle(env, cli)
    assert res.code == 0 and replayed_list(prestart)


def test_a_site_plugin_finding_facts_makes_every_start_full(env, cli):
    """Facts from a site plugin may come from anywhere (a CMDB): not compiled."""
    env.write_plugin("cmdb", """
        from jailhooks import hookimpl, Jail

        @hookimpl
        def jailhooks_jail_facts(name):
            return None  # knows no jail today; tomorrow it might
    """)
    env.write_config('plugins = ["cmdb"]', TYPICAL.format(root=env.jail_root("web")))
    env.sim.run(["/sbin/sysctl", "net.fibs=4"], None, 5, True)
    for _ in range(3):
        res, prestart = cycle(env, cli)
        assert res.code == 0 and not replayed_list(prestart), res.err
    assert "not compiled: plugin cmdb is asked at every start" in cli("-v", "run", "prestart", "web").err


def test_a_registry_put_back_from_a_backup_is_followed_by_the_next_start(web, cli, tmp_path):
    """cp registry.sqlite.bak registry.sqlite: no transaction of jailhooks' replaced
    the stamp, but the database file is another one."""
    import shutil

    db = web.state / "registry.sqlite"
    shutil.copy2(db, tmp_path / "backup.sqlite")
    shutil.copy2(tmp_path / "backup.sqlite", db)
    res, prestart = cycle(web, cli)
    assert res.code == 0 and not replayed_list(prestart)
    res, prestart = cycle(web, cli)
    assert res.code == 0 and replayed_list(prestart)  # reading the registry does not change its file
