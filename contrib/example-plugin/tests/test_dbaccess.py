"""The example plugin, driven through the jailhooks CLI on the simulated host."""
from __future__ import annotations

import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # the plugin, uninstalled

from jailhooks.main import main  # noqa: E402


@pytest.fixture
def config(tmp_path, monkeypatch):
    monkeypatch.delenv("JAILHOOKS_CONFIG", raising=False)
    path = tmp_path / "jailhooks.toml"
    path.write_text(f"""
plugins = ["jailhooks_dbaccess"]
[host]
mode = "simulated"
state_dir = "{tmp_path / 'state'}"
[dbaccess]
servers = ["192.0.2.50"]
[jail.app1]
ip4 = "192.0.2.11"
[jail.app1.dbaccess]
allowed = true
[jail.web]
ip4 = "192.0.2.12"
""")
    return str(path)


def render(config, jail, capsys):
    capsys.readouterr()
    assert main(["--config", config, "render", jail]) == 0
    return capsys.readouterr().out


def test_allowed_jail_gets_the_rule(config, capsys):
    text = render(config, "app1", capsys)
    assert "# from plugin jailhooks_dbaccess" in text
    assert "pass out quick proto tcp from <jail_app1> to 192.0.2.50 port 5432 keep state" in text


def test_other_jails_do_not(config, capsys):
    assert "5432" not in render(config, "web", capsys)


def test_a_missing_server_list_is_a_config_error(config, capsys):
    Path(config).write_text(Path(config).read_text().replace('servers = ["192.0.2.50"]', ""))
    assert main(["--config", config, "render", "app1"]) == 78
    assert "dbaccess.servers: jails are allowed" in capsys.readouterr().err


def test_bad_server_is_refused_with_its_key(config, capsys):
    Path(config).write_text(Path(config).read_text().replace("192.0.2.50", "db.example.org;pass"))
    assert main(["--config", config, "render", "app1"]) == 78
    assert "dbaccess.servers[0]: 'db.example.org;pass' is not an address or network" in capsys.readouterr().err
