"""jailhooks: per-jail outbound firewalling for FreeBSD jail hosts.

The public surface for plugin authors is :data:`hookimpl` (the marker for hook
implementations) and the types in :mod:`jailhooks.context`.  Importing this
package loads nothing heavy: the hook path's start-up time depends on it.
"""
from __future__ import annotations

__version__ = "0.1.0"
PROJECT = "jailhooks"

__all__ = ["PROJECT", "__version__", "hookimpl"]


def __getattr__(name: str):  # lazy: pluggy is only imported when a plugin asks for it
    if name == "hookimpl":
        import pluggy

        marker = pluggy.HookimplMarker(PROJECT)
        globals()["hookimpl"] = marker
        return marker
    raise AttributeError(name)
