"""The example plugin, driven through the jailhooks command line on the
simulated host with the ``jailhooks_env`` fixture that jailhooks installs
(jailhooks.testing).  They pass whether the plugin is installed (its entry
point) or not (the config lists it): it is one plugin either way."""
from __future__ import annotations

import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # the plugin, installed or not

CONFIG = """
[dbaccess]
servers = ["192.0.2.50"]
[jail.app1]
ip4 = "192.0.2.11"
[jail.app1.dbaccess]
allowed = true
[jail.web]
ip4 = "192.0.2.12"
"""


@pytest.fixture
def env(jailhooks_env):
    jailhooks_env.write_config('plugins = ["jailhooks_dbaccess"]', CONFIG)
    return jailhooks_env


def test_allowed_jail_gets_the_rule(env):
    res = env.run("render", "app1")
    assert res.code == 0, res.err
    assert "# from plugin jailhooks_dbaccess" in res.out or "# from plugin dbaccess" in res.out
    assert "pass out quick proto tcp from <jail_app1> to 192.0.2.50 port 5432 keep state" in res.out


def test_other_jails_do_not(env):
    assert "5432" not in env.run("render", "web").out


def test_the_rule_is_loaded_at_start(env):
    env.create_jail("app1", ip4="192.0.2.11")
    assert env.run("run", "start", "app1").code == 0
    assert any("port = postgresql" in rule for rule in env.anchor("jailhooks/app1")["filter"])


def test_a_missing_server_list_is_a_config_error(env):
    env.write_config('plugins = ["jailhooks_dbaccess"]', CONFIG.replace('servers = ["192.0.2.50"]', ""))
    res = env.run("render", "app1")
    assert res.code == 78 and "dbaccess.servers: jails are allowed" in res.err


def test_bad_server_is_refused_with_its_key(env):
    env.write_config('plugins = ["jailhooks_dbaccess"]', CONFIG.replace("192.0.2.50", "db.example.org;pass"))
    res = env.run("render", "app1")
    assert res.code == 78
    assert "dbaccess.servers[0]: 'db.example.org;pass' is not an address or network" in res.err
