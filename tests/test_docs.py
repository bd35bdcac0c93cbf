"""Docs stay in step with the code."""
from __future__ import annotations

import inspect

from jailhooks import hookspecs
from jailhooks.pluginmanager import BUILTIN_PLUGINS, make_plugins

from .conftest import REPO


def test_every_hook_is_in_the_readme_with_its_arguments():
    readme = (REPO / "README.md").read_text()
    hooks = [name for name in dir(hookspecs) if name.startswith("jailhooks_")]
    assert len(hooks) >= 14
    for name in hooks:
        fn = getattr(hookspecs, name)
        args = ", ".join(inspect.signature(fn).parameters)
        assert f"`{name}({args})`" in readme, name
        assert fn.__doc__ and len(fn.__doc__) > 60, f"{name} needs a docstring contract"


def test_builtins_register_first_in_documented_order():
    plugins = make_plugins([], autoload=False)
    assert [i.name for i in plugins.infos] == ["jls", "configfacts", "managers", "uids", "fib", "policy", "pf",
                                               "saddr"]  # the firewall plugin ([firewall] backend) after the policy
    assert [m.rsplit(".", 1)[1] for m in BUILTIN_PLUGINS] == [n for n in [i.name for i in plugins.infos] if n != "pf"]
    up = [impl.plugin_name for impl in plugins.ordered("jailhooks_prestart")]
    down = [impl.plugin_name for impl in plugins.ordered("jailhooks_poststop", down=True)]
    assert up == ["uids", "fib", "pf"]
    assert down == ["pf"]
    facts = [impl.plugin_name for impl in plugins.ordered("jailhooks_jail_facts")]
    assert facts == ["jls", "managers", "configfacts"]  # tryfirst jls, then the managers' files, trylast config


def test_readme_commands_exist():
    readme = (REPO / "README.md").read_text()
    assert "sh contrib/demo.sh" in readme
    assert "python3 -m venv .venv && .venv/bin/pip install -e '.[test,postgres]' && .venv/bin/pytest" in readme
    ci = (REPO / ".ci" / "run").read_text()
    assert '"$py" -m venv "$venv" && "$venv/bin/pip" install -q -e \'.[test,postgres]\' && "$venv/bin/pytest"' in ci
