"""The architecture, read from the source: data flows one way (CLI -> app ->
engine -> hooks -> host and registry), no plugin imports another, and no
module imports one that imports it back.  Imports inside functions count:
a lazy import is still a dependency."""
from __future__ import annotations

import ast
import pathlib

import pytest

PACKAGE = pathlib.Path(__file__).resolve().parent.parent / "jailhooks"


def modules() -> dict[str, pathlib.Path]:
    found = {}
    for path in PACKAGE.rglob("*.py"):
        parts = list(path.relative_to(PACKAGE.parent).with_suffix("").parts)
        if parts[-1] == "__init__":
            parts = parts[:-1]
        found[".".join(parts)] = path
    return found


MODULES = modules()


def imports(module: str) -> set[str]:
    """The jailhooks modules MODULE imports, anywhere in its body."""
    path = MODULES[module]
    package = module.split(".") if path.name == "__init__.py" else module.split(".")[:-1]
    found = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.ImportFrom):
            base = node.module or "" if node.level == 0 else ".".join(
                package[:len(package) - node.level + 1] + ([node.module] if node.module else []))
            for alias in node.names:
                found.add(f"{base}.{alias.name}" if f"{base}.{alias.name}" in MODULES else base)
        elif isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
    return {m for m in found if m in MODULES and m != module}


GRAPH = {module: imports(module) for module in MODULES}


def within(module: str, *packages: str) -> bool:
    return any(module == p or module.startswith(f"{p}.") for p in packages)


def test_the_graph_is_read():  # the rules below would pass on an empty graph
    assert len(GRAPH) > 40
    assert "jailhooks.engine" in GRAPH["jailhooks.app"]
    assert "jailhooks.claims" in GRAPH["jailhooks.plugins.uids"]


def test_no_import_cycle():
    done: set[str] = set()

    def visit(module: str, path: list[str]) -> None:
        if module in path:
            pytest.fail("import cycle: " + " -> ".join(path[path.index(module):] + [module]))
        if module in done:
            return
        for dep in sorted(GRAPH[module]):
            visit(dep, path + [module])
        done.add(module)

    for module in sorted(GRAPH):
        visit(module, [])


def test_plugins_meet_only_through_hooks():
    """No plugin imports another, and nothing imports a plugin: the plugin
    manager loads them by name, and the core asks them through hooks."""
    for module, deps in GRAPH.items():
        plugins = {d for d in deps if within(d, "jailhooks.plugins") and d != "jailhooks.plugins"}
        assert not plugins, f"{module} imports {sorted(plugins)}"


UPPER = ("jailhooks.main", "jailhooks.cli", "jailhooks.commands", "jailhooks.app", "jailhooks.engine",
         "jailhooks.pluginmanager", "jailhooks.plugins")
LOWER = ("jailhooks.host", "jailhooks.sim", "jailhooks.registry", "jailhooks.types", "jailhooks.errors",
         "jailhooks.validate", "jailhooks.jailfs", "jailhooks.claims", "jailhooks.config", "jailhooks.pf",
         "jailhooks.logbook", "jailhooks.hookspecs", "jailhooks.context", "jailhooks.managers",
         "jailhooks.policy")


@pytest.mark.parametrize("lower", LOWER)
def test_the_lower_layers_never_import_upward(lower):
    for module in (m for m in GRAPH if within(m, lower)):
        upward = {d for d in GRAPH[module] if within(d, *UPPER)}
        assert not upward, f"{module} imports {sorted(upward)}"


def test_only_the_front_ends_import_the_commands():
    for module, deps in GRAPH.items():
        if within(module, "jailhooks.commands", "jailhooks.main", "jailhooks.cli"):
            continue
        assert not {d for d in deps if within(d, "jailhooks.commands")}, module


BACKENDS = ("jailhooks.pf", "jailhooks.plugins.pf", "jailhooks.ipfw", "jailhooks.plugins.ipfw")
NEUTRAL = ("jailhooks.engine", "jailhooks.context", "jailhooks.hookspecs", "jailhooks.policy", "jailhooks.app",
           "jailhooks.commands", "jailhooks.pluginmanager", "jailhooks.types")


@pytest.mark.parametrize("module", sorted(m for m in GRAPH if within(m, *NEUTRAL)))
def test_the_core_knows_no_firewall(module):
    """The engine, the context, the hooks, the policy and the commands reach
    a firewall only through hooks (jailhooks_policy_rules, _render, _verify,
    _explain ...), so a second backend changes none of them."""
    backend = {d for d in GRAPH[module] if within(d, *BACKENDS)}
    assert not backend, f"{module} imports {sorted(backend)}"


def test_built_in_plugins_build_no_command_line():
    """Every FreeBSD command goes through a typed method of the host layer
    (jailhooks/host): no built-in plugin calls host.run("route", ...) itself."""
    from jailhooks.config import COMMANDS

    for module in (m for m in GRAPH if within(m, "jailhooks.plugins") and m != "jailhooks.plugins"):
        for node in ast.walk(ast.parse(MODULES[module].read_text())):
            if (isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute) and node.func.attr == "run"
                    and node.args and isinstance(node.args[0], ast.Constant) and node.args[0].value in COMMANDS):
                pytest.fail(f"{module}:{node.lineno} runs {node.args[0].value} itself")


def test_the_host_layer_does_not_choose_the_simulator():
    """jailhooks/host runs commands; the application picks its runner (the
    real commands, the simulator, a dry run), so the FreeBSD path never
    depends on the simulator."""
    for module in (m for m in GRAPH if within(m, "jailhooks.host")):
        assert not {d for d in GRAPH[module] if within(d, "jailhooks.sim")}, module


def test_one_way_to_replace_a_file():
    """Every file jailhooks replaces goes through jailfs.replace_in (a new
    file, fsync'ed, renamed over the old one, the directory fsync'ed): no
    other module renames files (the simulator's own state aside)."""
    for module in (m for m in GRAPH if not within(m, "jailhooks.sim", "jailhooks.jailfs")):
        for node in ast.walk(ast.parse(MODULES[module].read_text())):
            if (isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute)
                    and node.func.attr in ("replace", "rename") and isinstance(node.func.value, ast.Name)
                    and node.func.value.id == "os"):
                pytest.fail(f"{module}:{node.lineno} renames a file itself (use jailfs.replace_file)")


def test_one_backend_does_not_reach_into_another():
    """pf and ipfw share only neutral modules (policy, probes)."""
    for module, deps in GRAPH.items():
        for mine, other in ((("jailhooks.pf", "jailhooks.plugins.pf"), ("jailhooks.ipfw", "jailhooks.plugins.ipfw")),
                            (("jailhooks.ipfw", "jailhooks.plugins.ipfw"), ("jailhooks.pf", "jailhooks.plugins.pf"))):
            if within(module, *mine):
                assert not {d for d in deps if within(d, *other)}, f"{module} imports {sorted(deps)}"
