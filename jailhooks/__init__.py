"""jailhooks: per-jail outbound firewalling for FreeBSD jail hosts.

The public API for plugin authors is what this module exports (``__all__``);
anything else may change between releases.

* ``hookimpl``: the marker of hook implementations (hookspecs.py has every
  hook's contract);
* ``Context``: what a phase hook receives (its jail, lease, settings, host,
  log, undo steps and notes), and the values ``Jail`` and ``Lease``;
* ``Filter``, ``Nat``, ``Rdr``: the rules a plugin contributes through
  ``jailhooks_policy_rules`` (whatever the firewall), validated when they
  are made and again when the core builds the jail's policy;
* ``Section``, ``Field`` and the checkers ``boolean``, ``integer``,
  ``number``, ``choice``, ``one_or_list``, ``list_of``, ``table_of``: a
  plugin's own config section; ``validate``: the checkers of names,
  addresses, ports and networks;
* the errors, each with its exit code: ``JailhooksError``, ``DataError``,
  ``ConfigError``, ``UsageError``, ``PoolExhausted``.

Importing this package loads nothing else: each name is imported on first
use (the hook path's start-up depends on it).
"""
from __future__ import annotations

__version__ = "0.1.0"
PROJECT = "jailhooks"

_EXPORTS = {
    "Context": "context", "Jail": "types", "Lease": "types",
    "Filter": "policy", "Nat": "policy", "Rdr": "policy",
    "Section": "config", "Field": "config", "boolean": "config", "integer": "config", "number": "config",
    "choice": "config", "one_or_list": "config", "list_of": "config", "table_of": "config",
    "JailhooksError": "errors", "DataError": "errors", "ConfigError": "errors", "UsageError": "errors",
    "PoolExhausted": "errors",
}

__all__ = ["PROJECT", "__version__", "hookimpl", "validate", *_EXPORTS]


def __getattr__(name: str):
    if name == "hookimpl":
        import pluggy

        marker = pluggy.HookimplMarker(PROJECT)
        globals()["hookimpl"] = marker
        return marker
    import importlib

    if name == "validate":  # (a plain `from . import validate` here would come back to this function)
        return importlib.import_module(f"{__name__}.validate")
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module 'jailhooks' has no attribute {name!r}")
    value = getattr(importlib.import_module(f"{__name__}.{module}"), name)
    globals()[name] = value
    return value
