"""Fail closed on every path: a jail never runs, or keeps running, without
its rules; no value from outside becomes a rule; a lease is never handed to
two jails.  Each test drives the CLI or a shim as a user or an attacker would."""
from __future__ import annotations

import json
import subprocess

import pytest

from jailhooks import integrations

from .conftest import REPO
from .test_managers import CLEAN_ENV, host, iocage_hook, run_like_jail8  # noqa: F401 (fixture)


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
    program = integrations.prefix_paths()[0]
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
    before = cli("status", "--json", "web").json()
    res = cli("run", "destroy", "web")
    assert res.code == 64 and "jail web is running (jid 1): stop it before destroy, or use --force" in res.err
    assert cli("status", "--json", "web").json() == before  # lease, FIB and anchor kept
    assert cli("run", "destroy", "--force", "web").code == 0
    assert cli("status", "--json", "web").json()[0]["uid_range"] is None
