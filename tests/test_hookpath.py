"""The hook path (what jail managers run at every start and stop) imports
only what it needs: pinned by the modules it loads, not by wall time."""
from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest

from jailhooks.pf.listing import listing as print_listing
from jailhooks.pf.syntax import parse

from .conftest import FIXTURES, REPO

PROBE = """
import sys
from jailhooks.main import main
code = main(sys.argv[1:])
modules = sorted(sys.modules)
import json
print(json.dumps({"code": code, "modules": modules}))
"""


def loaded(env, *args, extra_path=""):
    run_env = {**os.environ, "PYTHONPATH": os.pathsep.join(p for p in (extra_path, str(REPO)) if p)}
    proc = subprocess.run([sys.executable, "-c", PROBE, "--config", str(env.config), *args],
                          capture_output=True, text=True, env=run_env, timeout=60)
    last = proc.stdout.strip().splitlines()[-1]
    return json.loads(last)


@pytest.fixture
def site(tmp_path):
    """An installed site plugin, found through its entry point."""
    site = tmp_path / "site"
    (site / "quietplugin-1.0.dist-info").mkdir(parents=True)
    (site / "quietplugin-1.0.dist-info" / "METADATA").write_text("Metadata-Version: 2.1\nName: quietplugin\nVersion: 1.0\n")
    (site / "quietplugin-1.0.dist-info" / "entry_points.txt").write_text("[jailhooks]\nquiet = quietplugin\n")
    (site / "quietplugin.py").write_text("from jailhooks import hookimpl\n\n@hookimpl\ndef jailhooks_prestart(ctx):\n    pass\n")
    # as in any site-packages: the first import writes into __pycache__, not into the
    # directory whose mtime says a distribution came or went
    (site / "__pycache__").mkdir()
    return str(site)


def freebsd_stubs(env, tmp_path) -> None:
    """The config for the real host layer ([host] mode = "freebsd"), its
    commands sh scripts that answer as FreeBSD 15.1 does to a prestart of a
    jail that is not running yet (jls: the recorded "not found"); so what is
    pinned is what a hook run imports on FreeBSD, not in the simulator."""
    nosuch = FIXTURES / "jls" / "jls-libxo-json-j-nosuch"
    bin_ = tmp_path / "bin"
    bin_.mkdir()
    listing = tmp_path / "pfctl-a-all-s-rules.out"
    # pfctl answers as a host whose pf.conf calls the jail anchors and which
    # holds the anchor prestart loads: what `-a '*' -s rules` then prints
    pfctl = (f'case "$*" in "-a * -s rules") cat {listing};; "-a * -s nat"|"-v -s Interfaces") ;; '
             '"-s Running") echo Enabled;; *) cat > /dev/null;; esac')
    # jls -j web: the recorded "not found"; jls of every jail (prestart's address check): the
    # recorded listing less its jails (web is the one that is about to start)
    every = FIXTURES / "jls" / "jls-libxo-json-params.out"
    jls = (f'case "$*" in *" -j "*) sed s/nosuch/web/ {nosuch}.out; sed s/nosuch/web/ {nosuch}.err >&2; exit 1;; '
           f'*) sed \'s/"jail": \\[.*\\]/"jail": []/\' {every};; esac')
    stubs = {"jls": jls,
             "pfctl": pfctl, "sysctl": "echo 1", "route": ":", "jail": ":"}
    for tool, body in stubs.items():
        (bin_ / tool).write_text(f"#!/bin/sh\n{body}\n")
        (bin_ / tool).chmod(0o755)
    env.config.write_text(f'[host]\nmode = "freebsd"\nstate_dir = "{env.state}"\n[host.commands]\n'
                          + "".join(f'{tool} = "{bin_ / tool}"\n' for tool in stubs)
                          + '[jail.web]\nip4 = "192.0.2.10"\n')
    rendered = subprocess.run([sys.executable, "-m", "jailhooks", "--config", str(env.config), "render", "web"],
                              capture_output=True, text=True, env={**os.environ, "PYTHONPATH": str(REPO)},
                              timeout=60).stdout
    main = parse('anchor "jailhooks/*"\n', in_anchor=False)
    listing.write_text(print_listing(main.lines("filter"), {"jailhooks/web": parse(rendered, True).lines("filter")},
                                     "rules"))


def test_run_prestart_avoids_click_metadata_and_logging(env, site, tmp_path):
    freebsd_stubs(env, tmp_path)
    first = loaded(env, "run", "prestart", "web", extra_path=site)
    assert first["code"] == 0
    assert "importlib.metadata" in first["modules"]  # the first run scans and caches the entry points
    second = loaded(env, "run", "prestart", "web", extra_path=site)
    assert second["code"] == 0
    assert "quietplugin" in second["modules"]  # the plugin is still loaded, from the cache
    assert "jailhooks.host.runner" in second["modules"] and "jailhooks.sim" not in second["modules"]  # the real one
    assert "subprocess" not in second["modules"]  # it spawns with os.posix_spawn (host/runner.py)
    # What the interpreter loads anyway (an editable install's .pth may load pathlib and more)
    floor = subprocess.run([sys.executable, "-c", "import sys, pluggy, sqlite3; print(' '.join(sys.modules))"],
                           capture_output=True, text=True, timeout=60).stdout.split()
    added = set(second["modules"]) - set(floor)
    # needed now: ipaddress (prestart proves the jail's policy over pf's live rules, pf/prove.py) and
    # json (prestart reads every running jail's addresses: one address, one jail)
    for heavy in ("click", "importlib.metadata", "logging", "email", "hashlib", "socket",
                  "dataclasses", "runpy"):
        assert heavy not in added, heavy


def test_a_new_distribution_invalidates_the_cache(env, site, tmp_path):
    env.write_config('[jail.web]\nip4 = "192.0.2.10"\n')
    loaded(env, "run", "prestart", "web", extra_path=site)
    dist = tmp_path / "site" / "second-1.0.dist-info"
    dist.mkdir()
    (dist / "METADATA").write_text("Metadata-Version: 2.1\nName: second\nVersion: 1.0\n")
    (dist / "entry_points.txt").write_text("[jailhooks]\nsecond = secondplugin\n")
    (tmp_path / "site" / "secondplugin.py").write_text("")
    again = loaded(env, "run", "prestart", "web", extra_path=site)
    assert "secondplugin" in again["modules"]


def test_help_does_not_load_plugins(env):
    out = loaded(env, "--help")
    assert out["code"] == 0
    assert "click" in out["modules"]
    assert "importlib.metadata" not in out["modules"]
    assert not any(m.startswith("jailhooks.plugins.") for m in out["modules"])


@pytest.mark.parametrize("argv", [
    ["run", "start", "web"],
    ["--dry-run", "-q", "run", "poststop", "a", "b"],
    ["--config=x.toml", "-v", "run", "prestart", "web", "--ip4", "192.0.2.1,192.0.2.2", "--path=/j"],
    ["run", "start", "--", "-odd"],
])
def test_fast_parser_accepts_well_formed_run_lines(argv):
    from jailhooks.main import parse_run

    assert parse_run(argv) is not None


@pytest.mark.parametrize("argv", [
    ["status"], ["run", "--help"], ["run", "start"], ["--bogus", "run", "start", "x"], ["run", "start", "x", "--path"],
    ["run", "start", "x", "--path", "/a", "--path", "/b"], ["run", "start", "x", "-v"],
])
def test_fast_parser_leaves_everything_else_to_click(argv):
    from jailhooks.main import parse_run

    assert parse_run(argv) is None


def test_an_upgraded_distribution_invalidates_the_cache(env, site, tmp_path):
    """pip upgrades by removing the old *-info directory and creating the new one."""
    env.write_config('[jail.web]\nip4 = "192.0.2.10"\n')
    loaded(env, "run", "prestart", "web", extra_path=site)
    old = tmp_path / "site" / "quietplugin-1.0.dist-info"
    new = tmp_path / "site" / "quietplugin-1.1.dist-info"
    old.rename(new)
    (new / "entry_points.txt").write_text("[jailhooks]\nquiet = quietplugin2\n")
    (tmp_path / "site" / "quietplugin2.py").write_text("")
    again = loaded(env, "run", "prestart", "web", extra_path=site)
    assert "quietplugin2" in again["modules"] and "quietplugin" not in again["modules"]


def test_plugins_rescans_a_distribution_edited_in_place(env, site, tmp_path):
    """An entry point edited in place leaves the directory mtimes alone; the
    hook path keeps its cache until `jailhooks plugins` rescans."""
    env.write_config('[jail.web]\nip4 = "192.0.2.10"\n')
    for _ in range(2):  # the first import may add site/__pycache__, which the second run caches
        loaded(env, "run", "prestart", "web", extra_path=site)
    sitedir = tmp_path / "site"
    before = os.stat(sitedir)
    (sitedir / "quietplugin2.py").write_text("")
    ep = sitedir / "quietplugin-1.0.dist-info" / "entry_points.txt"
    ep.write_text("[jailhooks]\nquiet = quietplugin2\n")
    os.utime(sitedir, ns=(before.st_atime_ns, before.st_mtime_ns))
    assert "quietplugin" in loaded(env, "run", "prestart", "web", extra_path=site)["modules"]  # cached
    listed = loaded(env, "plugins", extra_path=site)
    assert listed["code"] == 0 and "quietplugin2" in listed["modules"]
    after = loaded(env, "run", "prestart", "web", extra_path=site)
    assert "quietplugin2" in after["modules"] and "quietplugin" not in after["modules"]


def test_the_cache_keeps_one_entry_per_sys_path(env, site):
    """The console script and `python -m jailhooks` see different sys.path
    lists; alternating between them must not rescan every time."""
    env.write_config('[jail.web]\nip4 = "192.0.2.10"\n')
    run_env = {**os.environ, "PYTHONPATH": os.pathsep.join((site, str(REPO)))}

    def modules(extra: str) -> list[str]:
        code = f"import sys; sys.path.insert(0, {extra!r})\n" + PROBE
        proc = subprocess.run([sys.executable, "-c", code, "--config", str(env.config), "run", "prestart", "web"],
                              capture_output=True, text=True, env=run_env, timeout=60)
        return json.loads(proc.stdout.strip().splitlines()[-1])["modules"]

    for extra in ("/nonexistent-a", "/nonexistent-b"):  # two sys.path lists, each scanned once
        assert "importlib.metadata" in modules(extra)
    for extra in ("/nonexistent-a", "/nonexistent-b", "/nonexistent-a"):
        found = modules(extra)
        assert "importlib.metadata" not in found and "quietplugin" in found


def test_run_leaves_the_collector_as_it_found_it(env, capsys):
    """The hook path pauses and freezes the cyclic GC while loading; an
    in-process caller gets it back enabled, with nothing left frozen."""
    import gc

    env.write_config('[jail.web]\nip4 = "192.0.2.10"\n')
    assert gc.isenabled() and gc.get_freeze_count() == 0
    assert env.run("run", "prestart", "web", capsys=capsys).code == 0
    assert gc.isenabled() and gc.get_freeze_count() == 0
    assert env.run("run", "prestart", "no..such", capsys=capsys).code == 65
    assert gc.isenabled() and gc.get_freeze_count() == 0


def test_ipv4_checks_do_not_import_ipaddress():
    """Checked without site (no .pth file may import it first)."""
    code = ("import sys; from jailhooks import validate; validate.jail_address('em0|192.0.2.10/24', 4); "
            "validate.network('192.0.2.53'); validate.port('8000:8080'); print('ipaddress' in sys.modules)")
    out = subprocess.run([sys.executable, "-S", "-c", code], capture_output=True, text=True, timeout=60,
                         env={"PYTHONPATH": str(REPO)})
    assert out.stdout.strip() == "False", out.stderr


def test_the_hook_path_loads_no_admin_command(env):
    """status, sync, check, install and the rest live in commands/admin.py and
    commands/install.py, which only the click CLI imports."""
    env.write_config('[jail.web]\nip4 = "192.0.2.10"\n')
    modules = loaded(env, "run", "prestart", "web")["modules"]
    assert "jailhooks.app" in modules
    assert "jailhooks.commands.run" in modules
    assert not {"jailhooks.commands.admin", "jailhooks.commands.install", "jailhooks.cli",
                "jailhooks.managers.install"} & set(modules)


def test_a_replayed_prestart_loads_no_plugin_registry_toml_or_typing(env, tmp_path):
    """A start whose inputs did not change (plan.py, replay.py): the host
    layer, the plan and json for jls; not pluggy, the plugins, the registry,
    tomllib, typing or the policy."""
    import time

    from jailhooks import plan

    freebsd_stubs(env, tmp_path)
    assert loaded(env, "run", "prestart", "web")["code"] == 0  # takes the lease: the registry changes
    time.sleep(plan.RACY_SECONDS + 0.1)  # the inputs settle before the start that compiles
    assert loaded(env, "run", "prestart", "web")["code"] == 0
    assert (env.state / "plans" / "web").is_file()
    replayed = loaded(env, "run", "prestart", "web")
    assert replayed["code"] == 0
    floor = subprocess.run([sys.executable, "-c", "import sys; print(' '.join(sys.modules))"],
                           capture_output=True, text=True, timeout=60).stdout.split()
    added = set(replayed["modules"]) - set(floor)
    assert "jailhooks.replay" in added and "jailhooks.host.runner" in added
    assert not {"pluggy", "tomllib", "tomli", "sqlite3", "typing", "click", "importlib.metadata", "subprocess",
                "jailhooks.app", "jailhooks.config", "jailhooks.pluginmanager", "jailhooks.engine",
                "jailhooks.policy", "jailhooks.sim"} & added, sorted(added)
