"""The CLI end to end on the simulated host, as a user (or jail(8)) runs it."""
from __future__ import annotations

import fcntl
import json
import sqlite3
import textwrap

import pytest

from .conftest import status_records

POLICY = """
[pf]
allow = [{ proto = ["tcp", "udp"], to = "192.0.2.53", port = 53 }]

[jail.web]
path = "{root}/jails/web"
ip4 = ["192.0.2.10"]

[jail.web.pf]
allow = [{ proto = "tcp", port = [80, 443] }]
"""


@pytest.fixture
def web(env):
    env.jail_root("web")
    env.write_config(POLICY.replace("{root}", str(env.root)))
    return env


def leases(env):
    path = env.state / "registry.sqlite"
    if not path.exists():
        return []
    with sqlite3.connect(path) as db:
        return db.execute("SELECT jail, uid_first, uid_last FROM leases ORDER BY jail").fetchall()


def test_start_and_stop_a_jail_in_a_subprocess(web):
    web.create_jail("web", ip4="192.0.2.10")
    res = web.subprocess("run", "start", "web")
    assert res.code == 0, res.err
    assert "web: prestart: uids: UIDs 100000-100999 (new lease)" in res.out
    assert "web: prestart: pf: anchor jailhooks/web loaded" in res.out
    anchor = web.anchor("jailhooks/web")
    assert anchor["tables"] == {"jail_web": ["192.0.2.10"]}
    # known by its address: every process of the jail, whatever its UID
    assert ('pass out quick proto tcp from <jail_web> to any port = http '
            'flags S/SA keep state label "jailhooks:web"') in anchor["filter"]
    assert web.host_state()["jails"]["web"]["ip4.saddrsel"] is False
    pw_conf = (web.root / "jails/web/etc/pw.conf").read_text()
    assert "minuid = 100000" in pw_conf and "maxgid = 100999" in pw_conf

    status = status_records(web.subprocess("status", "--json").out)
    per_rule = status[0].pop("rule_counters")
    assert [c["rule"] for c in per_rule] == anchor["filter"] and all(c["section"] for c in per_rule)
    assert {c["packets"] for c in per_rule} == {0}
    assert status == [{"jail": "web", "running": True, "jid": 1, "path": str(web.root / "jails/web"),
                       "ip4": ["192.0.2.10"], "ip6": [], "uid_range": [100000, 100999], "fib": None,
                       "anchor": "jailhooks/web", "anchor_loaded": True, "rules": len(anchor["filter"]),
                       "passed": {"packets": 0, "bytes": 0}, "blocked": {"packets": 0, "bytes": 0},
                       "match": "address", "vnet": False}]

    web.sim.add_state("192.0.2.10", "198.51.100.7", "jailhooks:web")
    web.sim.add_state("198.51.100.8", "192.0.2.10")
    web.remove_jail("web")
    stop = web.subprocess("run", "stop", "web")
    assert stop.code == 0, stop.err
    assert web.anchor("jailhooks/web") is None
    assert web.host_state()["states"] == []
    assert leases(web) == [("web", 100000, 100999)]  # stop keeps the lease


def test_render_is_what_start_loads(web, cli):
    rendered = cli("render", "web")
    assert rendered.code == 0
    web.create_jail("web", ip4="192.0.2.10")
    assert cli("run", "prestart", "web").code == 0
    res = web.sim.run(["/sbin/pfctl", "-a", "jailhooks/web", "-s", "rules"], None, 5, False)
    # render before the lease existed matched by address only; after it, both
    again = cli("render", "web").out
    load = web.sim.run(["/sbin/pfctl", "-n", "-v", "-a", "x/y", "-f", "-"], again, 5, True)
    assert [l for l in load.stdout.splitlines() if not l.startswith("table")] == res.stdout.splitlines()


RECORDER = """
    import os
    from jailhooks import hookimpl

    LOG = os.environ["RECORDER_LOG"]

    def note(what):
        with open(LOG, "a") as fh:
            fh.write(what + "\\n")

    @hookimpl
    def jailhooks_prestart(ctx):
        note(f"prestart {ctx.jail.name} lease={ctx.lease.uid_first}")

    @hookimpl
    def jailhooks_poststop(ctx):
        note(f"poststop {ctx.jail.name}")
"""


def test_site_plugin_from_config_list(web, tmp_path):
    web.write_plugin("siterecorder", RECORDER)
    web.config.write_text('plugins = ["siterecorder"]\n' + web.config.read_text())
    log = tmp_path / "calls.log"
    web.extra_env["RECORDER_LOG"] = str(log)
    assert web.subprocess("run", "prestart", "web").code == 0
    assert web.subprocess("run", "poststop", "web").code == 0
    assert log.read_text() == "prestart web lease=100000\npoststop web\n"
    listing = json.loads(web.subprocess("plugins", "--json").out)
    assert {"name": "siterecorder", "source": "config", "module": "siterecorder", "error": None, "disabled": False,
            "hooks": ["jailhooks_poststop", "jailhooks_prestart"]} in listing


def test_site_plugin_from_entry_point(web, tmp_path):
    web.write_plugin("eprecorder", RECORDER)
    dist = web.site / "eprecorder-1.2.dist-info"
    dist.mkdir()
    (dist / "METADATA").write_text("Metadata-Version: 2.1\nName: eprecorder\nVersion: 1.2\n")
    (dist / "entry_points.txt").write_text("[jailhooks]\nrecorder = eprecorder\n")
    log = tmp_path / "calls.log"
    web.extra_env["RECORDER_LOG"] = str(log)
    res = web.subprocess("run", "prestart", "web")
    assert res.code == 0, res.err
    assert log.read_text() == "prestart web lease=100000\n"
    listing = json.loads(web.subprocess("plugins", "--json").out)
    assert any(p["name"] == "recorder" and p["source"] == "entry point recorder from eprecorder 1.2" for p in listing)


def test_broken_plugin_is_a_config_error_naming_it(web, tmp_path):
    web.write_plugin("brokenplugin", "import no_such_module_anywhere\n")
    web.config.write_text('plugins = ["brokenplugin"]\n' + web.config.read_text())
    res = web.subprocess("run", "prestart", "web")
    assert res.code == 78
    assert "plugin module 'brokenplugin' (config plugins) failed to import" in res.err
    assert leases(web) == [] and web.host_state()["pf"]["anchors"] == {}
    listing = web.subprocess("plugins", "--json")  # still listed, with its error
    assert listing.code == 78
    broken = [p for p in json.loads(listing.out) if p["name"] == "brokenplugin"]
    assert broken and "ModuleNotFoundError" in broken[0]["error"]


def test_misspelt_hook_is_refused(web, tmp_path):
    web.write_plugin("typoplugin", "from jailhooks import hookimpl\n@hookimpl\ndef jailhooks_prestrat(ctx):\n    pass\n")
    web.config.write_text('plugins = ["typoplugin"]\n' + web.config.read_text())
    res = web.subprocess("run", "prestart", "web")
    assert res.code == 78 and "jailhooks_prestrat" in res.err


FAILING = """
    from jailhooks import hookimpl
    from jailhooks.errors import JailhooksError

    @hookimpl
    def jailhooks_{phase}(ctx):
        raise JailhooksError("site policy says no")
"""


def test_prestart_failure_undoes_the_run(web, cli):
    web.write_plugin("failing_pre", FAILING.replace("{phase}", "prestart"))
    web.config.write_text('plugins = ["failing_pre"]\n' + web.config.read_text())
    res = cli("run", "start", "web")
    assert res.code == 1
    assert "web: prestart: failing_pre: site policy says no" in res.err
    assert "undone: pf: flush anchor jailhooks/web" in res.err
    assert "undone: uids: release UIDs 100000-100999" in res.err
    assert web.anchor("jailhooks/web") is None
    assert leases(web) == []
    assert not (web.root / "jails/web/etc/pw.conf").exists()


def test_poststop_failure_does_not_stop_the_others(web, cli):
    web.write_plugin("failing_post", FAILING.replace("{phase}", "poststop"))
    assert cli("run", "prestart", "web").code == 0
    web.config.write_text('plugins = ["failing_post"]\n' + web.config.read_text())
    web.sim.add_fault(["pfctl", "-q", "-k", "label"], rc=1, stderr="pfctl: DIOCKILLSTATES: Device busy\n")
    res = cli("run", "poststop", "web")
    assert res.code == 1
    assert "failing_post: site policy says no" in res.err
    assert "pf: /sbin/pfctl -q -k label -k jailhooks:web: pfctl: DIOCKILLSTATES: Device busy" in res.err
    assert web.anchor("jailhooks/web") is None  # flushed all the same


@pytest.mark.parametrize("name", ["a/b", "web;rm", "we\nb", "..", "-rf", "1234", "a..b", ".a", "a.-b", "x" * 256, ""])
def test_bad_jail_names_change_nothing(web, cli, name):
    res = cli("run", "start", "--", name)
    assert res.code == 65, res.err
    assert "jail name" in res.err and res.err.count("\n") == 1
    assert leases(web) == [] and web.host_state()["pf"]["anchors"] == {}


def test_config_errors_are_all_reported_with_their_keys(env, cli):
    env.config.write_text(env.config.read_text() + textwrap.dedent("""
        [pf]
        defualt = "block"
        [jail.web]
        ip4 = ["192.0.2.10", "192.0.2.300"]
        [jail.web.pf]
        allow = [{ proto = "tcp", port = 70000 }]
        """))
    res = cli("run", "prestart", "web")
    assert res.code == 78
    lines = res.err.splitlines()
    assert f"jailhooks: {env.config}: pf.defualt: unknown key" in lines
    assert f"jailhooks: {env.config}: jail.web.ip4[1]: '192.0.2.300' is not an IPv4 address" in lines
    assert f"jailhooks: {env.config}: jail.web.pf.allow[0].port: port 70000 is outside 1-65535" in lines


def test_missing_config_file_given_explicitly(env, capsys):
    from jailhooks.main import main
    assert main(["--config", str(env.root / "nope.toml"), "status"]) == 78
    assert "nope.toml: file not found" in capsys.readouterr().err


@pytest.mark.parametrize("args,code", [
    (["run", "launch", "web"], 64),
    (["run", "start"], 64),
    (["frobnicate"], 64),
    (["run", "start", "a", "b", "--path", "/x"], 64),
])
def test_usage_errors(web, cli, args, code):
    assert cli(*args).code == code


def test_dry_run_changes_nothing(web, cli):
    web.create_jail("web", ip4="192.0.2.10")
    before = web.host_state()
    res = cli("--dry-run", "run", "start", "web")
    assert res.code == 0, res.err
    # the plan, on stdout with the rest of the report, and in the conditional
    assert "would run: /sbin/pfctl -a jailhooks/web -f -" in res.out and res.err == ""
    assert "would write: " in res.out
    assert "web: prestart: pf: (dry run, not done) anchor jailhooks/web loaded" in res.out
    after = web.host_state()
    before.pop("log"), after.pop("log")
    assert after == before
    assert not (web.state / "registry.sqlite").exists()
    assert not (web.root / "jails/web/etc/pw.conf").exists()


def test_lock_timeout_is_exit_75(web, cli):
    (web.state / "locks").mkdir(parents=True)
    with open(web.state / "locks" / "web.lock", "w") as held:
        fcntl.flock(held, fcntl.LOCK_EX)
        web.config.write_text(web.config.read_text().replace("lock_timeout = 3", "lock_timeout = 0.2"))
        res = cli("run", "prestart", "web")
    assert res.code == 75
    assert "another jailhooks run holds its lock" in res.err


def test_exhausted_pool_is_exit_69(web, cli):
    web.config.write_text(web.config.read_text() + "\n[uids]\nfirst = 100000\nlast = 100999\nblock = 1000\n")
    assert cli("run", "create", "web").code == 0
    res = cli("run", "create", "other", "--ip4", "192.0.2.11")
    assert res.code == 69
    assert "UID pool 100000-100999 has no free block of 1000 UIDs (1 blocks in use)" in res.err


def test_sync_restores_a_flushed_anchor_and_removes_orphans(web, cli):
    web.create_jail("web", ip4="192.0.2.10")
    assert cli("run", "start", "web").code == 0
    expected = web.anchor("jailhooks/web")
    web.sim.run(["/sbin/pfctl", "-a", "jailhooks/web", "-F", "all"], None, 5, True)
    web.sim.run(["/sbin/pfctl", "-a", "jailhooks/gone", "-f", "-"], "pass out all\n", 5, True)
    res = cli("sync")
    assert res.code == 0, res.err
    assert "sync: pf: flushed orphan anchor jailhooks/gone" in res.out
    assert web.anchor("jailhooks/web") == expected
    assert web.anchor("jailhooks/gone") is None


def test_poststart_refuses_a_jail_without_its_anchor(web, cli):
    web.create_jail("web", ip4="192.0.2.10")
    res = cli("run", "poststart", "web")
    assert res.code == 1
    assert "anchor jailhooks/web does not hold the rules start loads" in res.err


def test_check_finds_missing_hooks_in_the_main_ruleset(web, cli, tmp_path):
    assert cli("check").code == 0
    conf = tmp_path / "pf.conf"
    conf.write_text('anchor "other/*"\npass out all\n')
    web.sim.run(["/sbin/pfctl", "-f", str(conf)], None, 5, True)
    res = cli("check")
    assert res.code == 1
    assert 'main ruleset lacks nat-anchor "jailhooks/*"' in res.out


def test_release_by_hand(web, cli):
    web.create_jail("web", ip4="192.0.2.10")
    assert cli("run", "create", "web").code == 0
    refused = cli("release", "web")
    assert refused.code == 64 and "is running" in refused.err
    web.remove_jail("web")
    res = cli("release", "web")
    assert res.code == 0 and "released UIDs 100000-100999" in res.out
    assert leases(web) == []


def test_release_runs_every_plugins_release_hook_and_ends_the_lease_whatever_fails(web, cli):
    web.write_plugin("failing_release", FAILING.replace("{phase}", "release"))
    web.config.write_text('plugins = ["failing_release"]\n' + web.config.read_text())
    assert cli("run", "create", "web").code == 0
    pw_conf = web.root / "jails/web/etc/pw.conf"
    assert "of jail web" in pw_conf.read_text()
    res = cli("release", "web")
    assert res.code == 0
    assert "web: failing_release: site policy says no" in res.err
    assert "of jail web" not in pw_conf.read_text()  # the uids plugin's release hook ran all the same
    assert leases(web) == []


def test_destroy_ends_the_lease(web, cli):
    assert cli("run", "create", "web").code == 0
    assert cli("run", "destroy", "web").code == 0
    assert leases(web) == []
    assert cli("run", "destroy", "web").code == 0  # idempotent


def test_phases_are_idempotent(web, cli):
    web.create_jail("web", ip4="192.0.2.10")
    assert cli("run", "start", "web").code == 0
    first = (web.anchor("jailhooks/web"), leases(web), (web.root / "jails/web/etc/pw.conf").read_text())
    assert cli("run", "start", "web").code == 0
    assert (web.anchor("jailhooks/web"), leases(web), (web.root / "jails/web/etc/pw.conf").read_text()) == first
    assert cli("run", "stop", "web").code == 0
    assert cli("run", "stop", "web").code == 0


def test_options_give_facts_of_an_unconfigured_jail(env, cli):
    env.jail_root("db")
    res = cli("run", "prestart", "db", "--path", str(env.root / "jails/db"), "--ip4", "em0|192.0.2.30/24",
              "--ip6", "2001:db8::30")
    assert res.code == 0, res.err
    assert env.anchor("jailhooks/db")["tables"] == {"jail_db": ["192.0.2.30", "2001:db8::30"]}
    bad = cli("run", "prestart", "db", "--ip4", "192.0.2.300")
    assert bad.code == 65 and "jail db: '192.0.2.300' is not an IPv4 address" in bad.err


EXITING = """
    import atexit, os, threading, time
    from jailhooks import hookimpl

    OUT = os.environ["EXIT_LOG"]

    def write(what):
        with open(OUT, "a") as fh:
            fh.write(what + "\\n")

    @hookimpl
    def jailhooks_prestart(ctx):
        ctx.note("noted")
        atexit.register(write, "atexit ran")
        if os.environ.get("EXIT_THREAD"):
            threading.Thread(target=lambda: (time.sleep(0.3), write("thread finished"))).start()
"""


@pytest.mark.parametrize("thread", [False, True])
def test_the_program_exits_like_python_does(web, tmp_path, thread):
    """The program skips interpreter teardown, but not what a normal exit does:
    piped output is flushed, atexit handlers run, a plugin's thread finishes,
    and the exit status is main()'s."""
    web.write_plugin("exiting", EXITING)
    web.config.write_text('plugins = ["exiting"]\n' + web.config.read_text())
    log = tmp_path / "exit.log"
    web.extra_env.update({"EXIT_LOG": str(log), **({"EXIT_THREAD": "1"} if thread else {})})
    res = web.subprocess("run", "prestart", "web")
    assert res.code == 0, res.err
    assert "web: prestart: exiting: noted\n" in res.out
    assert sorted(log.read_text().splitlines()) == (["atexit ran", "thread finished"] if thread else ["atexit ran"])
    assert web.subprocess("run", "prestart", "no..such").code == 65  # main()'s exit status, unchanged
