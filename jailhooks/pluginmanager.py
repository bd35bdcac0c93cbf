"""Build the plugin manager: built-ins, entry points, config-listed modules.

Registration order is the call order on the way up (see hookspecs.py):
built-ins first, in BUILTIN_PLUGINS order, then plugins from the
``jailhooks`` entry-point group (sorted by name, so the order does not depend
on how site-packages happens to list them), then the modules in the config's
``plugins`` list.  A plugin that cannot be imported or registered is a
PluginLoadError (exit 78) naming it: a firewall plugin must never be skipped.
"""
from __future__ import annotations

import importlib
import sys
from typing import Any

import pluggy

from . import PROJECT, hookspecs
from .errors import JailhooksError, PluginLoadError

BUILTIN_PLUGINS = (
    "jailhooks.plugins.jls",
    "jailhooks.plugins.configfacts",
    "jailhooks.plugins.managers",
    "jailhooks.plugins.uids",
    "jailhooks.plugins.fib",
    "jailhooks.plugins.policy",
    "jailhooks.plugins.saddr",
)
# [firewall] backend: the one firewall plugin that loads, after the policy
FIREWALL_PLUGINS = {"pf": "jailhooks.plugins.pf", "ipfw": "jailhooks.plugins.ipfw"}
ENTRY_POINT_GROUP = "jailhooks"


class PluginInfo:
    __slots__ = ("name", "source", "module", "error", "hooks", "disabled")

    def __init__(self, name: str, source: str, module: str, error: str | None = None,
                 hooks: list[str] | None = None, disabled: bool = False) -> None:
        self.disabled = disabled
        self.name = name
        self.source = source  # builtin, entry point (dist version), config
        self.module = module
        self.error = error
        self.hooks = hooks or []


class Plugins:
    """A pluggy manager plus what we know of each plugin and its order."""

    def __init__(self) -> None:
        self.pm = pluggy.PluginManager(PROJECT)
        self.pm.add_hookspecs(hookspecs)
        self.infos: list[PluginInfo] = []
        self._rank: dict[str, int] = {}

    def register(self, obj: Any, name: str, source: str, module: str) -> None:
        try:
            self.pm.register(obj, name=name)
        except Exception as exc:  # pluggy validation: wrong signature, unknown hook
            raise PluginLoadError(f"plugin {name} ({source}) cannot be registered: {exc}") from None
        callers = self.pm.get_hookcallers(obj) or []
        # The engine calls one plugin at a time (to blame and undo per plugin),
        # so a wrapper would only ever wrap its own plugin, never the others: a
        # wrapper that raises to refuse a start would not do what pluggy says.
        wrappers = sorted(hc.name for hc in callers for impl in hc.get_hookimpls()
                          if impl.plugin is obj and (impl.hookwrapper or getattr(impl, "wrapper", False)))
        if wrappers:
            self.pm.unregister(obj)
            raise PluginLoadError(f"plugin {name} ({source}): wrapper hook implementations are not supported "
                                  f"({', '.join(wrappers)}); use a plain hookimpl")
        self._rank[name] = len(self._rank)
        hooks = sorted(h.name for h in callers)
        self.infos.append(PluginInfo(name, source, module, hooks=hooks))

    def ordered(self, hook: str, down: bool = False) -> list[Any]:
        """Implementations in our documented order (reversed on the way down)."""
        impls = getattr(self.pm.hook, hook).get_hookimpls()

        def key(impl: Any) -> tuple[int, int]:
            group = 0 if impl.tryfirst else 2 if impl.trylast else 1
            return (group, self._rank.get(impl.plugin_name, len(self._rank)))

        ordered = sorted(impls, key=key)
        return ordered[::-1] if down else ordered

    def callers(self, hook: str, down: bool = False) -> list[tuple[str, Any]]:
        """(plugin name, hook caller) for each implementation of HOOK, in order.

        Each caller is pluggy's own hook caller narrowed to one plugin
        (``subset_hook_caller``), so every call goes through pluggy (its
        argument checks, ``firstresult``, tracing and hook-call monitoring)
        while the engine still calls one plugin at a time: to blame a failure
        on its plugin, undo what the run did, or carry on past it."""
        impls = self.ordered(hook, down)
        everyone = {impl.plugin for impl in impls}
        return [(impl.plugin_name, self.pm.subset_hook_caller(hook, everyone - {impl.plugin})) for impl in impls]

    def collect(self, hook: str, **kwargs: Any) -> list[tuple[str, Any]]:
        """Call every implementation in up order; (plugin, result) for non-None results."""
        out = []
        for plugin, caller in self.callers(hook):
            result = call_plugin(plugin, caller, **kwargs)
            if result is not None:
                out.append((plugin, result))
        return out


    def first(self, hook: str, **kwargs: Any) -> Any:
        """The first plugin's non-None answer (for firstresult hooks), or None."""
        for plugin, caller in self.callers(hook):
            result = call_plugin(plugin, caller, **kwargs)
            if result is not None:
                return result
        return None


def call_plugin(plugin: str, caller: Any, **kwargs: Any) -> Any:
    """call(), with what is not an Exception (sys.exit(), KeyboardInterrupt,
    a bare BaseException) from a plugin turned into a one-line error naming
    it: nothing a plugin raises ends jailhooks as if all were well."""
    try:
        return call(caller, **kwargs)
    except ValueError as exc:  # an invalid value the plugin made (a Filter it built, ...)
        from .errors import DataError
        from .validate import escaped

        raise DataError(escaped(f"plugin {plugin}: {exc}")) from None
    except Exception:
        raise
    except BaseException as exc:
        from .validate import escaped

        raise JailhooksError(escaped(f"plugin {plugin}: raised {type(exc).__name__}; refusing to go on")) from None


def call(caller: Any, **kwargs: Any) -> Any:
    """What one plugin's hook caller (see Plugins.callers) returned, or None.
    pluggy hands back a list of the non-None results, or with ``firstresult``
    the result itself; a caller here has one implementation."""
    result = caller(**kwargs)
    if caller.spec is not None and caller.spec.opts.get("firstresult"):
        return result
    return result[0] if result else None


def _resolve(module: str, attr: str, source: str, name: str, value: str) -> Any:
    obj = _import(module, source)
    for part in filter(None, attr.strip().split(".")):
        try:
            obj = getattr(obj, part)
        except AttributeError:
            raise PluginLoadError(f"plugin {name} ({source}): {value} not found") from None
    return obj


def _import(module: str, source: str) -> Any:
    try:
        return importlib.import_module(module)
    except Exception as exc:
        raise PluginLoadError(f"plugin module {module!r} ({source}) failed to import: "
                              f"{type(exc).__name__}: {exc}") from None


def _fingerprint() -> list:
    """What changes when a distribution is installed, upgraded or removed: the
    mtime of each sys.path directory (installing, upgrading or removing a
    distribution creates or deletes its *-info directory there).  One stat per
    entry; a dist-info edited in place is picked up by ``jailhooks plugins``,
    which always rescans."""
    import os

    prints = []
    for entry in sys.path:
        try:
            prints.append([entry, os.stat(entry or ".").st_mtime_ns])
        except OSError:  # gone
            prints.append([entry, None])
    return prints


def _scan() -> list[tuple[str, str, str]]:
    from importlib import metadata

    found = []
    for dist in metadata.distributions():
        for ep in dist.entry_points:
            if ep.group == ENTRY_POINT_GROUP:
                found.append((ep.name, ep.value, f"{dist.metadata['Name']} {dist.version}"))
    return sorted(set(found))


CACHED_PATHS = 8  # distinct sys.path lists remembered (console script, python -m, ...)


def entry_points(cache_dir: str | None = None, rescan: bool = False) -> list[tuple[str, str, str]]:
    """(name, "module[:attr]", "dist version") of the jailhooks entry points.

    importlib.metadata costs more than the rest of a hook run, so the result
    is cached in CACHE_DIR for each sys.path (the console script and
    ``python -m jailhooks`` see different ones), with a fingerprint that any
    install, upgrade or removal changes; a stale or unreadable cache is
    simply rebuilt; RESCAN rebuilds it regardless.  The cache is marshal data
    (a module every interpreter has loaded already) and is checked for shape
    before use.
    """
    if cache_dir is None:
        return _scan()
    import marshal
    import os

    path = os.path.join(cache_dir, "entry-points.dat")
    key = tuple(sys.path)
    prints = _fingerprint()
    try:
        with open(path, "rb") as fh:
            cache = marshal.load(fh)
        if not isinstance(cache, dict):
            raise TypeError
    except (OSError, ValueError, EOFError, TypeError):
        cache = {}
    hit = cache.get(key)
    if not rescan and _valid(hit) and hit[0] == prints:
        return [tuple(ep) for ep in hit[1]]
    found = _scan()
    cache.pop(key, None)
    cache[key] = (prints, found)
    for old in list(cache)[:-CACHED_PATHS]:
        del cache[old]
    try:
        from .jailfs import replace_file

        os.makedirs(cache_dir, mode=0o700, exist_ok=True)
        replace_file(path, marshal.dumps(cache), 0o600)
    except OSError:  # read-only state dir (not root): work uncached
        pass
    return found


def _valid(entry: Any) -> bool:
    return (isinstance(entry, tuple) and len(entry) == 2 and isinstance(entry[1], list)
            and all(isinstance(ep, (list, tuple)) and len(ep) == 3 and all(isinstance(f, str) for f in ep)
                    for ep in entry[1]))


def make_plugins(modules: list[str], autoload: bool = True, cache_dir: str | None = None,
                 strict: bool = True, disabled: list[str] | None = None, firewall: str = "pf") -> Plugins:
    """Register every plugin.  strict=False (for ``jailhooks plugins``) records a
    plugin that fails to load, with its error, instead of stopping, and
    rescans the installed entry points (refreshing their cache).

    One plugin, one registration: a module that arrives both as an entry point
    and in the config's ``plugins`` is registered once (as the entry point).
    DISABLED names entry points or modules that must not load (never a
    built-in: turning off the pf plugin would leave every jail without rules).
    FIREWALL ([firewall] backend) picks the firewall plugin: pf or ipfw."""
    plugins = Plugins()
    disabled = set(disabled or ())
    builtins = list(BUILTIN_PLUGINS)
    builtins.insert(builtins.index("jailhooks.plugins.policy") + 1, FIREWALL_PLUGINS[firewall])
    every = [*BUILTIN_PLUGINS, *FIREWALL_PLUGINS.values()]
    builtin_names = {m.rsplit(".", 1)[1] for m in every} | set(every)
    if disabled & builtin_names:
        raise PluginLoadError(f"plugins.disabled: {sorted(disabled & builtin_names)[0]} is built in and cannot be "
                              "disabled (its own config section switches it off where it can be)")

    def attempt(name: str, source: str, module: str, load) -> None:
        if name in disabled or module in disabled:
            plugins.infos.append(PluginInfo(name, source, module, disabled=True))
            return
        try:
            obj = load()
            if plugins.pm.is_registered(obj):  # the same module again (entry point and config)
                return
            if name in plugins._rank:
                raise PluginLoadError(f"plugin {name} ({source}): the name is already taken")
            plugins.register(obj, name, source, module)
        except PluginLoadError as exc:
            if strict:
                raise
            plugins.infos.append(PluginInfo(name, source, module, error=str(exc)))

    for module in builtins:
        plugins.register(_import(module, "builtin"), module.rsplit(".", 1)[1], "builtin", module)
    if autoload:
        for name, value, dist in entry_points(cache_dir, rescan=not strict):
            module, _, attr = value.partition(":")
            source = f"entry point {name} from {dist}"
            attempt(name, source, module.strip(), lambda: _resolve(module.strip(), attr, source, name, value))
    for module in modules:
        attempt(module, "config", module, lambda: _import(module, "config plugins"))
    try:
        plugins.pm.check_pending()  # a misspelt hook name would silently never run
    except pluggy.PluginValidationError as exc:
        raise PluginLoadError(f"plugin {getattr(exc.plugin, '__name__', exc.plugin)}: {exc}") from None
    return plugins
