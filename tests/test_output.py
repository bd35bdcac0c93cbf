"""What jailhooks prints for people and for scripts: the versioned JSON of
status and check, the tab-separated -H mode, one stream for check, quiet."""
from __future__ import annotations

import json
import subprocess
import sys

from .conftest import REPO

CONFIG = '[jail.web]\npath = "{root}"\nip4 = "192.0.2.10"\nip6 = "2001:db8::10"\n'

EVIL = '''
from jailhooks import hookimpl

@hookimpl
def jailhooks_status(ctx):
    return {"running": "a plugin cannot overwrite this", "jid": 999}
'''


def test_status_json_is_a_versioned_document_with_plugin_keys_under_their_plugin(env, cli):
    env.write_plugin("evilstatus", EVIL)
    env.write_config(CONFIG.format(root=env.jail_root("web")))
    env.config.write_text('plugins = ["evilstatus"]\n' + env.config.read_text())
    env.create_jail("web", ip4="192.0.2.10", ip6="2001:db8::10")
    assert cli("run", "start", "web").code == 0
    doc = cli("status", "--json").json()
    assert list(doc) == ["__version", "jailhooks-status"] and doc["__version"] == "1"
    (jail,) = doc["jailhooks-status"]["jail"]
    assert {k: jail[k] for k in ("name", "jid", "running", "ip4.addr", "ip6.addr", "vnet", "source")} == {
        "name": "web", "jid": 1, "running": True, "ip4.addr": ["192.0.2.10"], "ip6.addr": ["2001:db8::10"],
        "vnet": "inherit", "source": "jls"}
    assert list(jail["plugins"]) == ["uids", "fib", "pf", "evilstatus"]
    assert jail["plugins"]["uids"] == {"uid_range": [100000, 100999]}
    assert jail["plugins"]["pf"]["anchor_loaded"] is True
    assert jail["plugins"]["evilstatus"] == {"running": "a plugin cannot overwrite this", "jid": 999}
    assert jail["running"] is True and jail["jid"] == 1


def test_status_tab_separated_for_scripts(env, cli):
    env.write_config(CONFIG.format(root=env.jail_root("web")) + '[jail.db]\nip4 = "192.0.2.30"\n')
    env.create_jail("web", ip4="192.0.2.10")
    assert cli("run", "start", "web").code == 0
    lines = cli("status", "-H").out.splitlines()
    # the packets passed and blocked come last, after every plugin's columns: the others keep their places
    assert [line.split("\t") for line in lines] == [
        ["db", "-", "-", "-", "jailhooks/db", "no", "0", "-", "-"],
        ["web", "1", "100000-100999", "-", "jailhooks/web", "yes", lines[1].split("\t")[6], "0", "0"]]
    assert int(lines[1].split("\t")[6]) > 0


def test_check_is_one_stream_and_has_a_json_form(env, cli):
    env.write_config(CONFIG.format(root=env.jail_root("web")))
    env.create_jail("web", ip4="192.0.2.10")
    assert cli("run", "start", "web").code == 0
    assert env.sim.run(["/sbin/pfctl", "-a", "jailhooks/web", "-F", "rules"], None, 5, True).returncode == 0
    res = cli("check")
    assert res.code == 1 and res.err == "" and "error   pf: jail web runs without the rules" in res.out
    res = cli("check", "--json")
    assert res.code == 1 and res.err == ""
    doc = res.json()
    assert doc["__version"] == "1" and doc["jailhooks-check"]["ok"] is False
    findings = doc["jailhooks-check"]["finding"]
    assert {"level": "ok", "source": "registry", "message": "integrity check passed"} in findings
    assert any(f["level"] == "error" and f["source"] == "pf" and "jail web runs without" in f["message"]
               for f in findings)


def test_quiet_silences_the_simulated_host_notice(tmp_path):
    config = tmp_path / "c.toml"
    config.write_text(f'[host]\nstate_dir = "{tmp_path / "state"}"\n')  # mode auto: simulated off FreeBSD
    run = lambda *a: subprocess.run([sys.executable, "-m", "jailhooks", "--config", str(config), *a],  # noqa: E731
                                    capture_output=True, text=True, timeout=60, env={"PYTHONPATH": str(REPO)})
    assert "not on FreeBSD: using the simulated host" in run("status").stderr
    quiet = run("-q", "status", "--json")
    assert quiet.returncode == 0 and quiet.stderr == "" and json.loads(quiet.stdout)["jailhooks-status"] == {
        "host": "simulated", "jail": []}  # -q silences the notice on stderr; the document still says it


# -- syslog ----------------------------------------------------------------------------------------------

LOGGER = '''
from jailhooks import hookimpl

@hookimpl
def jailhooks_prestart(ctx):
    ctx.log.warning("site check: %s has no backup", ctx.jail.name)
'''


def _syslog(monkeypatch):
    import syslog

    logged: list = []
    monkeypatch.setattr("jailhooks.logbook.ENABLED", True)  # as on FreeBSD
    monkeypatch.setattr(syslog, "openlog", lambda *a: logged.append(("open", a)))
    monkeypatch.setattr(syslog, "syslog", lambda prio, line: logged.append((prio, line)))
    return syslog, logged


def test_runs_refusals_and_admin_changes_reach_syslog(env, cli, tmp_path, monkeypatch):
    syslog, logged = _syslog(monkeypatch)
    env.write_plugin("sitelogger", LOGGER)
    env.write_config(CONFIG.format(root=env.jail_root("web")) + '[jail.db]\nip4 = "192.0.2.30"\n')
    env.config.write_text('plugins = ["sitelogger"]\n' + env.config.read_text())
    lines = lambda prio: [line for p, line in logged if p == prio]  # noqa: E731

    assert cli("run", "prestart", "web").code == 0  # a phase's summary, and a plugin's ctx.log line
    assert ("open", ("jailhooks", syslog.LOG_PID, syslog.LOG_DAEMON)) in logged
    assert any(line.startswith("web: prestart: uids: UIDs 100000-100999 (new lease)") for line in lines(syslog.LOG_INFO))
    assert "jailhooks: site check: web has no backup" in lines(syslog.LOG_WARNING)

    assert cli("run", "prestart", "nosuch").code == 68  # refusals that never reach a phase
    assert any("unknown jail nosuch" in line for line in lines(syslog.LOG_ERR))
    good = env.config.read_text()
    env.config.write_text(good + "[bogus]\n")
    assert cli("run", "prestart", "web").code == 78
    assert any(line.startswith("refused (78): --config") and "bogus: unknown key" in line for line in lines(syslog.LOG_ERR))
    env.config.write_text(good)

    env.sim.run(["/sbin/pfctl", "-a", "jailhooks/gone", "-f", "-"], "pass out all\n", 5, True)
    assert cli("sync").code == 0  # admin changes
    assert "sync: pf: flushed orphan anchor jailhooks/gone" in lines(syslog.LOG_NOTICE)
    assert cli("release", "web").code == 0
    assert "web: released UIDs 100000-100999" in lines(syslog.LOG_NOTICE)
    leases = tmp_path / "leases.json"
    leases.write_text('{"jailhooks_registry": 1, "leases": [{"jail": "db", "uid_first": 200000, "uid_last": 200999}]}')
    assert cli("registry", "import", str(leases)).code == 0
    assert "registry: 1 lease(s) imported, 0 already there" in lines(syslog.LOG_NOTICE)


def test_the_syslog_facility_is_configurable(env, cli, monkeypatch):
    syslog, logged = _syslog(monkeypatch)
    env.write_config('[jail.web]\nip4 = "192.0.2.10"\n')
    env.config.write_text(env.config.read_text().replace("[host]\n", '[host]\nsyslog_facility = "local3"\n'))
    assert cli("run", "prestart", "web").code == 0
    assert ("open", ("jailhooks", syslog.LOG_PID, syslog.LOG_LOCAL3)) in logged


def test_every_command_has_an_example_and_run_usage_breaks_no_word():
    import click

    from jailhooks.cli import cli

    def commands(group, prefix):
        for name, cmd in group.commands.items():
            if isinstance(cmd, click.Group):
                yield from commands(cmd, prefix + [name])
            else:
                yield prefix + [name], cmd

    for words, cmd in commands(cli, []):
        assert "Example" in (cmd.help or ""), " ".join(words)
    run = subprocess.run([sys.executable, "-m", "jailhooks", "run", "--help"], capture_output=True, text=True,
                         timeout=60, env={"PYTHONPATH": str(REPO), "COLUMNS": "80"})
    assert run.stdout.startswith("Usage: jailhooks run [OPTIONS] PHASE JAILS...\n")


def test_a_plugin_adds_its_own_status_columns(env, cli):
    env.write_plugin("owner", "from jailhooks import hookimpl\n\n@hookimpl\ndef jailhooks_status(ctx):\n"
                              "    return {'owner': 'team-' + ctx.jail.name}\n\n@hookimpl\n"
                              "def jailhooks_columns(status):\n    return [('owner', status.get('owner', '-'))]\n")
    env.write_config('plugins = ["owner"]\n' + CONFIG.format(root=env.jail_root("web")))
    table = cli("status").out.splitlines()
    assert table[0].split() == ["JAIL", "JID", "UIDS", "FIB", "ANCHOR", "LOADED", "RULES", "OWNER", "PASSED",
                                "BLOCKED"]
    assert table[1].split()[0] == "web" and table[1].split()[7] == "team-web"
    assert cli("status", "-H").out.split("\n")[0].split("\t")[7] == "team-web"


def test_check_from_cron_mails_only_problems(env, cli):
    """cron(8) mails whatever a job prints: `jailhooks -q check` prints only
    the problems, and nothing when all is well; its exit status says which."""
    env.write_config(CONFIG.format(root=env.jail_root("web")))
    env.create_jail("web", ip4="192.0.2.10")
    assert cli("run", "start", "web").code == 0
    quiet = env.subprocess("-q", "check")  # a process of its own, its output captured, as cron runs it
    assert (quiet.code, quiet.out, quiet.err) == (0, "", "")
    assert env.sim.run(["/sbin/pfctl", "-a", "jailhooks/web", "-F", "rules"], None, 5, True).returncode == 0
    broken = env.subprocess("-q", "check")
    assert broken.code == 1 and broken.out.startswith("error   pf: jail web runs without the rules")
    assert not any(line.startswith("ok") for line in broken.out.splitlines())
    assert "pf is enabled (simulated host)" in cli("check").out


def test_json_reports_a_config_error_as_a_document(env, cli):
    env.config.write_text("[uids]\nfirst = 'x'\n")
    for args, container in ((["check", "--json"], "jailhooks-check"), (["status", "--json"], "jailhooks-status")):
        res = cli(*args)
        assert res.code == 78 and "uids.first" in res.err
        doc = json.loads(res.out)[container]
        assert doc["ok"] is False and doc["finding"][0]["source"] == "config" and "uids.first" in doc["finding"][0]["message"]
    assert cli("check").out == ""  # without --json: the one-line error on stderr only


def test_shell_completion_offers_the_jails_of_the_config_and_of_jls(env, cli):
    env.write_config(CONFIG.format(root=env.jail_root("web")) + '[jail.db]\nip4 = "192.0.2.30"\n')
    env.create_jail("wiki", ip4="192.0.2.40")  # running, in no config
    completion = {"_JAILHOOKS_COMPLETE": "bash_complete", "COMP_CWORD": "5",
                  "COMP_WORDS": f"jailhooks --config {env.config} run start w"}
    res = env.subprocess(env=completion)
    assert res.code == 0 and res.out.split() == ["plain,web", "plain,wiki"], (res.out, res.err)
    completion["COMP_WORDS"] = f"jailhooks --config {env.config} explain "
    assert env.subprocess(env=completion).out.split() == ["plain,db", "plain,web", "plain,wiki"]


def test_long_runs_show_progress_on_a_terminal_and_nothing_when_piped(env, cli):
    import io

    from jailhooks.app import load_app
    from jailhooks.commands import admin

    env.write_config('[jail.web]\nip4 = "192.0.2.10"\n[jail.mail]\nip4 = "192.0.2.20"\n')
    for name, ip in (("web", "192.0.2.10"), ("mail", "192.0.2.20")):
        env.create_jail(name, ip4=ip)
    piped = cli("sync")
    assert piped.code == 0 and "\r" not in piped.err and "sync: 1/2" not in piped.err

    class Terminal(io.StringIO):
        def isatty(self):
            return True

    app = load_app(str(env.config))
    app.out, app.err = io.StringIO(), Terminal()
    try:
        assert admin.sync(app) == 0
    finally:
        app.close()
    shown = app.err.getvalue()
    assert "\r\x1b[Ksync: 1/2 " in shown and "\r\x1b[Ksync: 2/2 " in shown
    assert shown.endswith("\r\x1b[K")  # cleared before the summary, which goes to stdout
    assert "sync: 2 running jail(s)" in app.out.getvalue()
