"""Each jail manager's part played as it plays it: the arguments and the
environment it gives hooks (managers.md), against the simulated host."""
from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from jailhooks.managers import ezjail, iocage, jailconf

from .conftest import REPO, status_records

FIX = Path(__file__).parent / "fixtures" / "managers"
CLEAN_ENV = {"PATH": "/bin:/usr/bin", "HOME": "/root", "USER": "root", "SHELL": "/bin/sh", "TERM": "dumb"}


@pytest.fixture
def host(env, tmp_path):
    """A config that reads the fixture managers' files, and a wrapper standing in
    for /usr/local/bin/jailhooks."""
    root = tmp_path / "root"
    shutil.copytree(FIX, root)
    env.write_config(f"""
        [uids]
        write_pw_conf = false  # the fixture jails' roots do not exist here

        [managers]
        jail_conf = "{root}/jail.conf"
        jail_conf_d = "{root}/jail.conf.d"
        ezjail_dir = "{root}/ezjail"
        iocroot = "{root}/iocage"
        bastille_jails = "{root}/bastille/jails"
        """)
    wrapper = tmp_path / "jailhooks"
    wrapper.write_text(f"#!/bin/sh\nPYTHONPATH={REPO} exec {sys.executable} -m jailhooks --config {env.config} \"$@\"\n")
    wrapper.chmod(0o755)
    env.wrapper = str(wrapper)
    env.fixture_root = root
    return env


def run_like_jail8(command: str, jail: str, wrapper: str) -> subprocess.CompletedProcess:
    """jail(8) after $name substitution: no shell metacharacters, so the line is
    split on whitespace and exec'd, with exec.clean's environment."""
    argv = command.replace("$name", jail).split()
    assert argv[0] == "/usr/local/bin/jailhooks"
    return subprocess.run([wrapper, *argv[1:]], env=CLEAN_ENV, capture_output=True, text=True, timeout=60)


def hooks_of(conf_text: str, jail: str) -> dict[str, list[str]]:
    params = jailconf.jail_params(jailconf.parse(conf_text, "jail.conf"), jail, "jail.conf")
    return {k: v for k, v in params.items() if k.startswith("exec.")}


def test_readers_read_what_the_managers_write(host):
    root = host.fixture_root
    web = jailconf.read(str(root / "jail.conf"), "web")
    assert (web["path"], web["ip4"], web["ip6"]) == ("/usr/jails/web", ["em0|192.0.2.10/24", "em0|192.0.2.11/24"],
                                                      ["2001:db8::10"])
    assert jailconf.read(str(root / "jail.conf"), "legacy") is None  # commented out
    assert ezjail.read(str(root / "ezjail"), "web-1")["ip6"] == ["em0|2001:db8::40"]
    ioc = iocage.read(str(root / "iocage"), "ioc-nextcloud")
    assert (ioc["path"], ioc["ip4"]) == (str(root / "iocage/jails/nextcloud/root"), ["em0|192.0.2.50/24"])
    assert jailconf.read(str(root / "bastille/jails/proxy/jail.conf"), "proxy")["ip4"] == ["192.0.2.60"]


@pytest.mark.parametrize("jail,table", [
    ("web", ["192.0.2.10", "192.0.2.11", "2001:db8::10"]),  # /etc/jail.conf
    ("db", ["10.0.0.5"]),  # /etc/jail.conf.d/db.conf
    ("web-1", ["192.0.2.40", "2001:db8::40"]),  # ezjail
    ("ioc-nextcloud", ["192.0.2.50"]),  # iocage (jail(8) knows it as ioc-NAME)
    ("proxy", ["192.0.2.60"]),  # Bastille
])
def test_run_by_hand_needs_no_options(host, cli, jail, table):
    res = cli("run", "prestart", jail)
    assert res.code == 0, res.err
    anchor = host.anchor(f"jailhooks/{jail}")
    assert list(anchor["tables"].values()) == [table]


def test_broken_manager_file_names_file_and_line(host, cli):
    (host.fixture_root / "jail.conf").write_text("web {\n  ip4.addr = 192.0.2.10\n}\n")
    res = cli("run", "prestart", "web")
    assert res.code == 65
    assert f"{host.fixture_root}/jail.conf:2: missing ';' after ip4.addr" in res.err


def test_jail_conf_lifecycle_as_jail8_runs_it(host):
    text = (REPO / "hooks" / "jail.conf").read_text() + "\nweb {\n ip4.addr = 192.0.2.10;\n path = /j/web;\n}\n"
    hooks = hooks_of(text, "web")
    assert sorted(hooks) == ["exec.poststop", "exec.prestart"]  # one process per start, one per stop
    for cmd in hooks["exec.prestart"]:
        assert run_like_jail8(cmd, "web", host.wrapper).returncode == 0
    assert host.anchor("jailhooks/web") is not None
    # jail(8) makes the jail with the parameters `install jail.conf web` prints (ip4.nosaddrsel)
    made = host.sim.run(["/usr/sbin/jail", "-c", "name=web", "path=/j/web", "persist", "ip4.addr=192.0.2.10",
                         "ip4.nosaddrsel"], None, 5, True)
    assert made.returncode == 0, made.stderr
    assert host.host_state()["jails"]["web"]["ip4.saddrsel"] is False
    assert "ip4.nosaddrsel;" in host.run("install", "jail.conf", "web").out
    host.remove_jail("web")
    for cmd in hooks["exec.poststop"]:
        assert run_like_jail8(cmd, "web", host.wrapper).returncode == 0
    assert host.anchor("jailhooks/web") is None


def test_check_finds_a_jail_started_without_its_saddrsel_parameter(env, cli):
    """One process per start: ip4.nosaddrsel is the jail's parameter, not a
    poststart; a jail made without it is found by check and mended by sync."""
    env.write_config(f'[jail.web]\npath = "{env.jail_root("web")}"\nip4 = "192.0.2.10"\n')
    assert cli("run", "prestart", "web").code == 0
    env.create_jail("web", ip4="192.0.2.10")  # no ip4.nosaddrsel
    res = cli("check", "web")
    assert "jail web: ip4.saddrsel is on" in res.out and "add ip4.nosaddrsel;" in res.out
    assert cli("sync").code == 0
    assert "saddrsel is on" not in cli("check", "web").out
    env.remove_jail("web")
    assert cli("run", "poststop", "web").code == 0
    assert cli("run", "prestart", "web").code == 0
    made = env.sim.run(["/usr/sbin/jail", "-c", "name=web", f"path={env.jail_root('web')}", "persist",
                        "ip4.addr=192.0.2.10", "ip4.nosaddrsel"], None, 5, True)
    assert made.returncode == 0, made.stderr
    res = cli("check", "web")
    assert "saddrsel is on" not in res.out and "jail web" in res.out


def test_jail_conf_prestart_failure_aborts_the_start(host):
    hooks = hooks_of((REPO / "hooks" / "jail.conf").read_text() + "web { ip4.addr = 192.0.2.10; }\n", "web")
    host.sim.add_fault(["pfctl", "-a", "jailhooks/web", "-f"], rc=1, stderr="pfctl: DIOCXCOMMIT: Device busy\n")
    res = run_like_jail8(hooks["exec.prestart"][0], "web", host.wrapper)
    assert res.returncode != 0  # jail(8): "exec.prestart ... failed", the jail is not created
    assert "Device busy" in res.stderr
    assert status_records(subprocess.run([host.wrapper, "status", "--json"], capture_output=True, text=True).stdout) == []


def iocage_hook(host, phase: str, jail: str, *previous: str) -> subprocess.CompletedProcess:
    """iocage splits the value with shlex, re-joins it and runs it via /bin/sh -c,
    with its own environment (no $name substitution)."""
    value = " ".join([host.wrapper, "hook", "iocage", phase, jail, *previous])  # as `install iocage` prints it
    return subprocess.run(["/bin/sh", "-c", value], env=CLEAN_ENV,
                          capture_output=True, text=True, timeout=60)


def test_iocage_lifecycle_chains_the_previous_hooks(host, tmp_path):
    marker = tmp_path / "previous-ran"
    assert iocage_hook(host, "prestart", "ioc-nextcloud", "/usr/bin/touch", str(marker)).returncode == 0
    assert marker.exists()
    assert list(host.anchor("jailhooks/ioc-nextcloud")["tables"].values()) == [["192.0.2.50"]]
    host.create_jail("ioc-nextcloud", ip4="192.0.2.50")
    assert iocage_hook(host, "poststart", "ioc-nextcloud").returncode == 0
    host.remove_jail("ioc-nextcloud")
    res = iocage_hook(host, "poststop", "ioc-nextcloud", "/bin/false")  # the user's hook fails...
    assert res.returncode == 1
    assert host.anchor("jailhooks/ioc-nextcloud") is None  # ...jailhooks cleaned up all the same


def test_iocage_prestart_failure_refuses_the_start(host, tmp_path):
    marker = tmp_path / "previous-ran"
    host.sim.add_fault(["pfctl", "-a", "jailhooks/ioc-nextcloud", "-f"], rc=1, stderr="pfctl: injected\n")
    res = iocage_hook(host, "prestart", "ioc-nextcloud", "/usr/bin/touch", str(marker))
    assert res.returncode == 1  # iocage: "Refusing to start ... exec_prestart failed"
    assert not marker.exists()


def test_pot_hooks_as_install_writes_them(host, cli, tmp_path):
    """Run the lines `install pot` prints, with a pot(1) stand-in that copies
    the hook scripts into the pot's conf/ as `pot set-hook` does; then pot
    runs them with its _POT_* environment."""
    conf = tmp_path / "pot" / "conf"
    conf.mkdir(parents=True)
    bindir = tmp_path / "bin"
    bindir.mkdir()
    (bindir / "pot").write_text(
        "#!/bin/sh\n[ \"$1\" = set-hook ] || exit 1; shift\n"
        "while [ $# -gt 0 ]; do case $1 in\n"
        f"  -s) cp \"$2\" {conf}/prestart.sh;; -S) cp \"$2\" {conf}/poststart.sh;;\n"
        f"  -t) cp \"$2\" {conf}/prestop.sh;; -T) cp \"$2\" {conf}/poststop.sh;;\n"
        "esac; shift; done\n")
    (bindir / "pot").chmod(0o755)
    program = f"{os.path.join(sys.prefix, 'bin', 'jailhooks')} --config {host.config}"
    printed = cli("install", "pot", "mypot").out.replace(program, host.wrapper)
    res = subprocess.run(["/bin/sh", "-c", printed], env={**CLEAN_ENV, "PATH": f"{bindir}:/usr/bin:/bin"},
                         capture_output=True, text=True, timeout=60)
    assert res.returncode == 0, res.stderr
    assert sorted(p.name for p in conf.iterdir()) == ["poststart.sh", "poststop.sh", "prestart.sh", "prestop.sh"]
    env = {**CLEAN_ENV, "_POT_NAME": "mypot", "_POT_IP": "192.0.2.70"}
    res = subprocess.run([str(conf / "prestart.sh")], env=env, capture_output=True, text=True, timeout=60)
    assert res.returncode == 0, res.stderr
    assert list(host.anchor("jailhooks/mypot")["tables"].values()) == [["192.0.2.70"]]
    assert subprocess.run([str(conf / "poststop.sh")], env=env, capture_output=True, timeout=60).returncode == 0
    assert host.anchor("jailhooks/mypot") is None
    bad = subprocess.run([host.wrapper, "hook", "pot", "restart"], env=env, capture_output=True, text=True)
    assert bad.returncode == 64


def test_install_prints_what_hooks_holds(host, cli):
    printed = cli("install", "jail.conf").out
    program = f"{os.path.join(sys.prefix, 'bin', 'jailhooks')} --config {host.config}"  # exec.clean drops the env
    shipped = [line for line in (REPO / "hooks" / "jail.conf").read_text().splitlines() if line.startswith("exec.")]
    assert [line for line in printed.splitlines() if line.startswith("exec.")] == [
        line.replace("/usr/local/bin/jailhooks", program) for line in shipped]


def test_install_iocage_keeps_the_users_hook(host, cli):
    out = cli("install", "iocage", "nextcloud").out
    assert ('iocage set exec_prestart="' + os.path.join(sys.prefix, "bin", "jailhooks") + f" --config {host.config}"
            + ' hook iocage prestart ioc-nextcloud /usr/local/sbin/backup-check" nextcloud') in out
    assert "iocage set ip4_saddrsel=0 nextcloud" in out


def test_check_finds_a_jail_whose_own_hook_replaced_ours(host, cli):
    res = cli("check")
    assert res.code == 1
    assert "jail build: exec.prestart does not run jailhooks" in res.out
    assert "jail web:" not in res.err


def test_install_apply_jail_conf_adds_lines_once_with_a_backup(host, cli):
    conf = host.fixture_root / "jail.conf"
    conf.write_text("# my jails\nexec.clean;\nweb {\n\tip4.addr = 192.0.2.10;\n}\n")
    res = cli("install", "jail.conf", "--apply")
    assert res.code == 0 and "added 2 line(s)" in res.out
    text = conf.read_text()
    assert text.index("run prestart -- $name") < text.index("web {")  # in the global part
    backups = list(conf.parent.glob("jail.conf.jailhooks-*.bak"))
    assert len(backups) == 1 and backups[0].read_text().startswith("# my jails\nexec.clean;\nweb {")
    hooks = jailconf.exec_hooks(str(conf), "web")
    program = f"{os.path.join(sys.prefix, 'bin', 'jailhooks')} --config {host.config}"
    assert hooks["exec.prestart"] == [f"{program} run prestart -- web"]
    again = cli("install", "jail.conf", "--apply")
    assert "already there; nothing changed" in again.out and conf.read_text() == text


def test_install_apply_ezjail_keeps_the_users_hooks(host, cli, tmp_path):
    rc = tmp_path / "rc.conf"
    rc.write_text('ezjail_enable="YES"\njail_exec_prestart0="/usr/local/sbin/mount-data"\n')
    host.config.write_text(host.config.read_text() + f'rc_conf = "{rc}"\n')
    assert cli("install", "ezjail", "--apply").code == 0
    text = rc.read_text()
    program = f"{os.path.join(sys.prefix, 'bin', 'jailhooks')} --config {host.config}"
    assert 'jail_exec_prestart0="/usr/local/sbin/mount-data"' in text  # still index 0
    assert f"jail_exec_prestart1='{program} run prestart -- $name'" in text  # next free index, no gap
    assert f"jail_exec_poststop0='{program} run poststop -- $name'" in text
    assert cli("install", "ezjail", "--apply").out.endswith("nothing changed\n")


def test_install_apply_is_refused_where_the_manager_keeps_its_settings(host, cli):
    res = cli("install", "iocage", "nextcloud", "--apply")
    assert res.code == 64 and "iocage keeps its settings itself" in res.err


def test_install_apply_bastille_edits_the_jails_own_file(host, cli):
    conf = host.fixture_root / "bastille" / "jails" / "proxy" / "jail.conf"
    assert cli("install", "bastille", "proxy", "--apply").code == 0
    hooks = jailconf.exec_hooks(str(conf), "proxy")  # as `jail -f FILE -c proxy` would see them
    program = f"{os.path.join(sys.prefix, 'bin', 'jailhooks')} --config {host.config}"
    assert hooks["exec.poststop"] == [f"{program} run poststop -- proxy"]
    assert hooks["exec.start"] == ["/bin/sh /etc/rc"]  # Bastille's own settings untouched
    assert cli("install", "bastille", "--apply").code == 64


def test_a_jail_conf_that_is_not_utf8_is_read_and_kept_byte_for_byte(host, cli):
    """A Latin-1 comment (an old file, a C locale) must neither break reading
    nor be rewritten by --apply."""
    conf = host.fixture_root / "jail.conf"
    conf.write_bytes(b"# Jails de la soci\xe9t\xe9\nexec.clean;\nweb {\n\tpath = /j/web;\n\tip4.addr = 192.0.2.10;\n}\n")
    assert jailconf.read(str(conf), "web")["ip4"] == ["192.0.2.10"]
    assert cli("install", "jail.conf", "--apply").code == 0
    data = conf.read_bytes()
    assert data.startswith(b"# Jails de la soci\xe9t\xe9\n") and b"run prestart -- $name" in data


def test_every_path_install_prints_exists_for_this_install(host, cli):
    """pip or the port: the lines call the jailhooks program itself."""
    import re
    from importlib.metadata import distributions

    from jailhooks.managers.install import program_path

    scripts = [os.path.normpath(f.locate()) for d in distributions(name="jailhooks") for f in d.files or ()
               if f.name == "jailhooks" and f.parent.name == "bin"]
    if scripts and program_path() not in scripts:
        pytest.skip(f"jailhooks is staged at {scripts[0]}, not installed (a port's make test)")

    checked = set()
    for manager in ("jail.conf", "bastille", "appjail", "ezjail", "iocage", "pot"):
        out = cli("install", manager, "nextcloud").out
        for path in re.findall(r"(/[\w./-]+)", out):
            if "jailhooks" in path and not path.endswith((".conf", ".sh")) and "/etc/" not in path:
                assert os.path.exists(path), (manager, path)
                checked.add((manager, path))
    assert {m for m, _ in checked} == {"jail.conf", "bastille", "appjail", "ezjail", "iocage", "pot"}


def test_pot_scripts_as_install_prints_them_call_the_installed_command(host, cli, tmp_path):
    """What `install pot` prints, run with a stand-in pot that copies the
    scripts as pot set-hook does; then pot runs them for an alias pot."""
    bindir = tmp_path / "bin"
    bindir.mkdir()
    conf = tmp_path / "pot" / "conf"
    conf.mkdir(parents=True)
    (bindir / "pot").write_text(f"""#!/bin/sh
shift 3  # set-hook -p NAME
while [ $# -gt 1 ]; do
  case $1 in -s) n=prestart;; -S) n=poststart;; -t) n=prestop;; -T) n=poststop;; esac
  cp "$2" "{conf}/$n.sh"; shift 2
done
""")
    (bindir / "pot").chmod(0o755)
    printed = cli("install", "pot", "mypot").out.replace(
        f"{os.path.join(sys.prefix, 'bin', 'jailhooks')} --config {host.config}", host.wrapper)
    script = "\n".join(line for line in printed.splitlines() if not line.startswith("#"))
    res = subprocess.run(["/bin/sh", "-c", script], env={**CLEAN_ENV, "PATH": f"{bindir}:/bin:/usr/bin"},
                         capture_output=True, text=True, timeout=60)
    assert res.returncode == 0, res.stderr
    assert (conf / "prestart.sh").read_text() == f"#!/bin/sh\nexec {host.wrapper} hook pot prestart\n"
    env = {**CLEAN_ENV, "_POT_NAME": "mypot", "_POT_IP": "192.0.2.70", "_POT_IP_LIST": "_POT_IP_0 _POT_IP_1",
           "_POT_IP_0": "192.0.2.70", "_POT_IP_1": "2001:db8::70"}
    assert subprocess.run([str(conf / "prestart.sh")], env=env, capture_output=True, timeout=60).returncode == 0
    assert list(host.anchor("jailhooks/mypot")["tables"].values()) == [["192.0.2.70", "2001:db8::70"]]
    assert subprocess.run([str(conf / "poststop.sh")], env=env, capture_output=True, timeout=60).returncode == 0
    assert host.anchor("jailhooks/mypot") is None


def test_install_lines_carry_the_config_only_when_it_is_not_the_default(host, cli, monkeypatch):
    from jailhooks import config
    from jailhooks.managers import install as integrations

    assert f" --config {host.config} run prestart -- $name" in cli("install", "jail.conf").out
    monkeypatch.setattr(config, "default_config_path", lambda: str(host.config))
    assert f'"{integrations.program_path()} run prestart -- $name"' in cli("install", "jail.conf").out


def test_install_apply_names_its_file_and_warns_about_jails_that_drop_the_hook(host, cli, tmp_path):
    conf = tmp_path / "other-jail.conf"
    conf.write_text('web {\n\tip4.addr = 192.0.2.10;\n\texec.prestart = "/usr/local/sbin/mine";\n}\n')
    res = cli("install", "jail.conf", "--apply", "--file", str(conf))
    assert res.code == 1 and f"{conf}: added 2 line(s)" in res.out  # edited, but web would still start unhooked
    assert f"install: 1 jail(s) in {conf} would still start without jailhooks" in res.err
    assert res.out.count("run prestart") == 1  # what changed, once
    assert (f"{conf}: jail web: its own 'exec.prestart = ...' replaces the jailhooks line: it would run without "
            "its firewall; use += there") in res.err
    assert cli("install", "jail.conf", "--file", str(conf)).code == 64  # --file goes with --apply


def test_install_appjail_prints_template_syntax(host, cli):
    out = cli("install", "appjail", "web").out
    assert f'exec.prestart+: "{os.path.join(sys.prefix, "bin", "jailhooks")} --config {host.config} run prestart -- ${{name}}"' in out
    assert "+=" not in out.replace("use +: there", "")
