"""Where jailhooks finds its config and keeps its state, and what an absolute
path is: the few things a replayed start (replay.py) needs from config.py,
without its imports."""
from __future__ import annotations

import os
import sys


def absolute_path(v: object) -> str:
    if not isinstance(v, str) or not v.startswith("/") or "\0" in v or "\n" in v:
        raise ValueError(f"{v!r} is not an absolute path")
    if any(part == ".." for part in v.split("/")):
        raise ValueError(f"{v!r} contains '..'")
    return os.path.normpath(v)


def default_config_path() -> str:
    """${PREFIX}/etc/jailhooks.toml, PREFIX being where this Python lives."""
    return os.path.join(sys.prefix, "etc", "jailhooks.toml")


def default_state_dir() -> str:
    if sys.platform.startswith("freebsd"):
        return "/var/db/jailhooks"
    base = os.environ.get("XDG_STATE_HOME") or os.path.join(os.path.expanduser("~"), ".local", "state")
    return os.path.join(base, "jailhooks")
