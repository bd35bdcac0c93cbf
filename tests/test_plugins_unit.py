"""The plugin manager and the engine on their own, with fresh managers (as
pluggy's own tests do): call order, tryfirst/trylast, duplicates, disabled
plugins, wrappers, a failing hook's undo; the public API; and the fast `run`
parser against click."""
from __future__ import annotations

import types

import pytest
from hypothesis import HealthCheck, given, settings, strategies as st

import jailhooks
from jailhooks import hookimpl
from jailhooks.config import build_settings
from jailhooks.engine import Engine, expand_phase
from jailhooks.errors import PluginLoadError, UsageError
from jailhooks.pluginmanager import Plugins, make_plugins
from jailhooks.types import COMPOSITE, PHASES, Jail


def plugin(name: str, **hooks) -> types.ModuleType:
    mod = types.ModuleType(name)
    for hook, fn in hooks.items():
        setattr(mod, hook, fn)
    return mod


def recorder(log: list, tag: str, fail: bool = False, **marks):
    @hookimpl(**marks)
    def impl(ctx):
        log.append(tag)
        ctx.on_undo(f"undo {tag}", lambda: log.append(f"undo {tag}"))
        if fail:
            raise RuntimeError(f"{tag} failed")
    return impl


def fresh(*mods: types.ModuleType) -> Plugins:
    plugins = Plugins()
    for mod in mods:
        plugins.register(mod, mod.__name__, "test", mod.__name__)
    return plugins


def test_up_in_registration_order_with_tryfirst_and_trylast_down_exactly_reversed():
    log: list = []
    plugins = fresh(plugin("a", jailhooks_prestart=recorder(log, "a")),
                    plugin("b", jailhooks_prestart=recorder(log, "b", trylast=True)),
                    plugin("c", jailhooks_prestart=recorder(log, "c")),
                    plugin("d", jailhooks_prestart=recorder(log, "d", tryfirst=True)))
    assert [i.plugin_name for i in plugins.ordered("jailhooks_prestart")] == ["d", "a", "c", "b"]
    assert [i.plugin_name for i in plugins.ordered("jailhooks_prestart", down=True)] == ["b", "c", "a", "d"]


class NoRegistry:
    fleet = False

    def get(self, jail):
        return None


def engine(plugins: Plugins, tmp_path) -> Engine:
    settings = build_settings({"host": {"state_dir": str(tmp_path), "mode": "simulated"}}, "test", [])
    return Engine(settings, plugins, host=None, registry=NoRegistry())


def test_a_failing_hook_stops_the_way_up_blames_its_plugin_and_undoes_newest_first(tmp_path):
    log: list = []
    plugins = fresh(plugin("a", jailhooks_prestart=recorder(log, "a")),
                    plugin("b", jailhooks_prestart=recorder(log, "b", fail=True)),
                    plugin("c", jailhooks_prestart=recorder(log, "c")))
    outcome = engine(plugins, tmp_path).run("prestart", Jail("web"))
    assert log == ["a", "b", "undo b", "undo a"]  # c never ran
    assert [(f.plugin, f.phase, f.message) for f in outcome.failures] == [("b", "prestart", "RuntimeError: b failed")]
    assert outcome.exit_code == 1


def test_the_way_down_runs_every_hook_and_reports_every_failure(tmp_path):
    log: list = []
    plugins = fresh(plugin("a", jailhooks_poststop=recorder(log, "a", fail=True)),
                    plugin("b", jailhooks_poststop=recorder(log, "b", fail=True)))
    outcome = engine(plugins, tmp_path).run("poststop", Jail("web"))
    assert log == ["b", "a"]
    assert [f.plugin for f in outcome.failures] == ["b", "a"]


def test_every_call_goes_through_pluggy_one_plugin_at_a_time(tmp_path):
    log: list = []
    plugins = fresh(plugin("a", jailhooks_prestart=recorder(log, "a")),
                    plugin("b", jailhooks_prestart=recorder(log, "b", tryfirst=True)))
    seen: list = []
    plugins.pm.add_hookcall_monitoring(
        lambda hook, impls, kwargs: seen.append((hook, [i.plugin_name for i in impls], sorted(kwargs))),
        lambda outcome, hook, impls, kwargs: None)
    engine(plugins, tmp_path).run("prestart", Jail("web"))
    assert log == ["b", "a"]
    assert seen == [("jailhooks_prestart", ["b"], ["ctx"]), ("jailhooks_prestart", ["a"], ["ctx"])]


def test_facts_stop_at_the_first_answer(tmp_path):
    asked: list = []

    def source(tag, answer):
        @hookimpl
        def jailhooks_jail_facts(name):
            asked.append(tag)
            return None if answer is None else Jail(name, path=answer, source=tag)
        return plugin(tag, jailhooks_jail_facts=jailhooks_jail_facts)

    plugins = fresh(source("silent", None), source("first", "/jails/one"), source("second", "/jails/two"))
    jail = engine(plugins, tmp_path).resolve("web")
    assert (jail.path, jail.source) == ("/jails/one", "first")
    assert asked == ["silent", "first"]  # firstresult: the second is never asked


@pytest.mark.parametrize("marks", [{"wrapper": True}, {"hookwrapper": True}])
def test_wrappers_are_refused_at_registration(marks):
    @hookimpl(**marks)
    def jailhooks_prestart(ctx):
        yield

    with pytest.raises(PluginLoadError, match="wrapper hook implementations are not supported"):
        fresh(plugin("w", jailhooks_prestart=jailhooks_prestart))


def test_a_misspelt_hook_is_refused():
    @hookimpl
    def jailhooks_prestrat(ctx):
        pass

    plugins = fresh(plugin("typo", jailhooks_prestrat=jailhooks_prestrat))
    with pytest.raises(Exception, match="unknown hook"):
        plugins.pm.check_pending()


def test_a_module_from_an_entry_point_and_the_config_is_one_plugin(monkeypatch):
    import sys

    mod = plugin("siteplug", jailhooks_prestart=recorder([], "x"))
    monkeypatch.setitem(sys.modules, "siteplug", mod)
    monkeypatch.setattr("jailhooks.pluginmanager.entry_points",
                        lambda cache_dir=None, rescan=False: [("siteplug", "siteplug", "siteplug 1.0")])
    plugins = make_plugins(["siteplug"])
    names = [i.plugin_name for i in plugins.ordered("jailhooks_prestart")]
    assert names.count("siteplug") == 1


def test_autoload_off_and_disabled_pin_the_plugin_set(monkeypatch):
    import sys

    for name in ("ep1", "ep2"):
        monkeypatch.setitem(sys.modules, name, plugin(name, jailhooks_prestart=recorder([], name)))
    monkeypatch.setattr("jailhooks.pluginmanager.entry_points",
                        lambda cache_dir=None, rescan=False: [("ep1", "ep1", "d 1"), ("ep2", "ep2", "d 1")])
    assert {"ep1", "ep2"} <= {i.name for i in make_plugins([]).infos}
    assert not {"ep1", "ep2"} & {i.name for i in make_plugins([], autoload=False).infos}
    pinned = make_plugins([], disabled=["ep2"])
    assert [(i.name, i.disabled) for i in pinned.infos if i.name.startswith("ep")] == [("ep1", False), ("ep2", True)]
    assert "ep2" not in [i.plugin_name for i in pinned.ordered("jailhooks_prestart")]
    with pytest.raises(PluginLoadError, match="pf is built in and cannot be disabled"):
        make_plugins([], disabled=["pf"])


def test_plugins_table_in_the_config(env, cli):
    env.write_config('[jail.web]\nip4 = "192.0.2.10"\n')
    env.config.write_text("[plugins]\nautoload = false\ndisabled = [\"nosuch\"]\nmodules = []\n"
                          + env.config.read_text())
    assert cli("run", "prestart", "web").code == 0
    env.config.write_text(env.config.read_text().replace("autoload = false", "autoload = 1"))
    res = cli("run", "prestart", "web")
    assert res.code == 78 and "plugins.autoload: must be true or false" in res.err


def test_the_public_api_is_what_the_package_exports():
    for name in jailhooks.__all__:
        assert getattr(jailhooks, name) is not None, name
    from jailhooks.pf.rules import Filter

    assert jailhooks.Filter is Filter and jailhooks.Jail is Jail
    with pytest.raises(AttributeError):
        jailhooks.nosuch  # noqa: B018


def test_the_example_plugin_uses_only_the_public_api():
    from .conftest import REPO

    text = (REPO / "contrib/example-plugin/jailhooks_dbaccess/__init__.py").read_text()
    imports = [line for line in text.splitlines() if line.startswith(("from jailhooks", "import jailhooks"))]
    assert imports == ["from jailhooks import Field, Filter, Section, boolean, hookimpl, integer, list_of, validate"]


LINES = [
    ["run", "start", "web"], ["run", "prestart", "--", "web"], ["-q", "run", "stop", "web", "mail"],
    ["--config", "/x.toml", "run", "poststart", "web"], ["--dry-run", "run", "create", "web", "--ip4", "192.0.2.1"],
    ["run", "prestart", "web", "--path", "/j/web", "--ip4", "192.0.2.1,192.0.2.2", "--ip6", "2001:db8::1"],
    ["-v", "run", "destroy", "--force", "web"], ["run", "start", "--path=/j/web", "web"],
]


@pytest.mark.parametrize("argv", LINES, ids=[" ".join(a) for a in LINES])
def test_the_fast_run_parser_and_click_agree(argv, monkeypatch):
    """main() parses `run` without click; both must read a line the same way."""
    from jailhooks import cli as cli_mod
    from jailhooks.main import parse_run

    fast = parse_run(argv)
    assert fast is not None, argv
    if fast["args"][0] not in PHASES + tuple(COMPOSITE):  # both refuse it: click as it parses, run() at once
        with pytest.raises(UsageError, match="unknown phase"):
            expand_phase(fast["args"][0])
        assert cli_mod.click_main(argv) == 64
        return
    seen = {}

    def fake_call(opts, fn, phase, names, path, ip4, ip6, force):
        seen.update(config=opts.config, dry_run=opts.dry_run, quiet=opts.quiet, verbose=opts.verbose, phase=phase,
                    names=names, path=path, ip4=ip4 or [], ip6=ip6 or [], force=force)
        return 0

    monkeypatch.setattr(cli_mod, "call", fake_call)
    assert cli_mod.click_main(argv) == 0
    assert seen == {"config": fast["config"], "dry_run": fast["dry_run"], "quiet": fast["quiet"],
                    "verbose": fast["verbose"], "phase": fast["args"][0], "names": fast["args"][1:],
                    "path": fast["path"], "ip4": fast["ip4"], "ip6": fast["ip6"], "force": fast["force"]}


GLOBAL_OPTS = [["-q"], ["--quiet"], ["--dry-run"], ["-v"], ["--verbose"], ["--config", "/c.toml"], ["--config=/c.toml"]]
RUN_OPTS = [["--force"], ["--path", "/j/web"], ["--path=/j/web"], ["--ip4", "192.0.2.1"], ["--ip4=192.0.2.1,192.0.2.2"],
            ["--ip6", "2001:db8::1"], ["--ip6=2001:db8::1,2001:db8::2"], ["--ip4", ""], ["--ip4", "--force"]]


@st.composite
def run_lines(draw) -> list[str]:
    """Run lines as the managers and admins write them, odd ones included."""
    line = [tok for opt in draw(st.lists(st.sampled_from(GLOBAL_OPTS), max_size=3)) for tok in opt]
    line += ["run", draw(st.sampled_from(["start", "stop", "prestart", "poststop", "destroy", "bogus"]))]
    for item in draw(st.lists(st.sampled_from(RUN_OPTS) | st.sampled_from(["web", "mail"]).map(lambda n: [n]),
                              max_size=5)):
        line += item
    if draw(st.booleans()):
        line += ["--", *draw(st.lists(st.sampled_from(["web", "-h", "--force", "db"]), max_size=2))]
    return line


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(run_lines())
def test_every_line_the_fast_parser_takes_click_reads_the_same(monkeypatch, argv):
    """Whatever line the fast parser accepts (it leaves the rest to click),
    click reads the same way: generated lines, not only the examples above."""
    from jailhooks.main import parse_run

    if parse_run(argv) is not None:
        test_the_fast_run_parser_and_click_agree(argv, monkeypatch)


def test_the_old_hook_name_still_contributes_and_check_says_it_is_deprecated(env, cli):
    env.write_plugin("oldname", "from jailhooks import Filter, hookimpl\n\n@hookimpl\ndef jailhooks_pf_rules(ctx):\n"
                                "    return [Filter(proto='tcp', to='192.0.2.77', port=8443)]\n")
    env.write_plugin("newname", "from jailhooks import Filter, hookimpl\n\n@hookimpl\ndef jailhooks_policy_rules(ctx):\n"
                                "    return [Filter(proto='tcp', to='192.0.2.78', port=8443)]\n")
    env.write_config('plugins = ["oldname", "newname"]\n[jail.web]\nip4 = "192.0.2.10"\n')
    text = cli("render", "web").out
    assert "to 192.0.2.77 port 8443" in text and "to 192.0.2.78 port 8443" in text
    report = cli("check").out
    assert "warning plugins: plugin oldname implements jailhooks_pf_rules, renamed jailhooks_policy_rules" in report
    assert "plugin newname implements" not in report
