"""The simulated host's state: kept in STATE_DIR/simhost/ as JSON (a file for
the host, and one per jail and per anchor, so that a command costs the same
with 10 jails or 1,000), read and written under an flock."""
from __future__ import annotations

import json
import os
import time
from typing import Any

from ..pf.syntax import parse

DEFAULT_PARENT = "jailhooks"
MAIN_RULESET = f"""\
set skip on lo0
nat-anchor "{DEFAULT_PARENT}/*"
rdr-anchor "{DEFAULT_PARENT}/*"
anchor "{DEFAULT_PARENT}/*"
pass out quick all keep state
"""


def _fresh_state() -> dict[str, Any]:
    rs = parse(MAIN_RULESET, in_anchor=False)
    return {
        "version": 1,
        "booted": time.time(),
        "next_jid": 1,
        "pf": {"loaded": True, "enabled": True, "since": time.time(),
               "main": main_entry(rs),
               },
        "states": [],
        "sysctl": {"net.fibs": "1", "net.add_addr_allfibs": "0", "security.jail.jailed": "0",
                   "kern.features.inet6": "1", "kern.osrelease": "15.1-RELEASE-p1",
                   # ipfw.ko loaded (its rules start with the default deny); one_pass 1 as ip_fw2.c defines it
                   "net.inet.ip.fw.enable": "1", "net.inet.ip.fw.one_pass": "1"},
        "routes": {"0": {}},
        "faults": [],
    }


def main_entry(rs) -> dict[str, Any]:
    """The main ruleset as the simulated kernel keeps it."""
    return {"filter": rs.lines("filter"), "nat": rs.lines("nat"), "refs": _refs(rs), "tables": rs.tables,
            "skip": sorted(set(rs.skip))}


def _refs(rs) -> list[str]:
    return sorted({r.anchor for r in rs.rules if r.kind.endswith("anchor")})




def _write(path: str, value: Any) -> None:
    """Replace PATH with VALUE as indented JSON."""
    _replace(path, json.dumps(value, indent=1, sort_keys=True) + "\n")


def _write_records(path: str, values: list) -> None:
    """Replace PATH with VALUES, one JSON line each."""
    _replace(path, "".join(json.dumps(value) + "\n" for value in values))


def _replace(path: str, text: str) -> None:
    tmp = f"{path}.{os.getpid()}.tmp"
    with open(tmp, "w", encoding="utf-8") as fh:
        fh.write(text)
    os.replace(tmp, path)



class _Store:
    """Jails, or pf anchors with content: one file each, read and written
    on use, so a command costs the same on a host with 10 jails or 1,000."""

    def __init__(self, directory: str):
        self.dir = directory

    def _path(self, name: str) -> str:
        # names are jail names or anchor paths: escape '%' and '/'
        return os.path.join(self.dir, name.replace("%", "%25").replace("/", "%2F") + ".json")

    def __iter__(self):
        try:
            names = os.listdir(self.dir)
        except FileNotFoundError:
            return iter(())
        return iter(sorted(n[:-5].replace("%2F", "/").replace("%25", "%") for n in names if n.endswith(".json")))

    def get(self, name: str, default: Any = None) -> Any:
        try:
            with open(self._path(name), encoding="utf-8") as fh:
                return json.load(fh)
        except FileNotFoundError:
            return default

    def items(self):
        return [(name, self.get(name)) for name in self]

    def values(self):
        return [entry for _, entry in self.items()]

    def __contains__(self, name: str) -> bool:
        return os.path.exists(self._path(name))

    def __getitem__(self, name: str) -> dict:
        entry = self.get(name)
        if entry is None:
            raise KeyError(name)
        return entry

    def __delitem__(self, name: str) -> None:
        if self.pop(name) is None:
            raise KeyError(name)

    def __setitem__(self, name: str, entry: dict) -> None:
        os.makedirs(self.dir, mode=0o700, exist_ok=True)
        _write(self._path(name), entry)

    def pop(self, name: str, default: Any = None) -> Any:
        entry = self.get(name, default)
        try:
            os.unlink(self._path(name))
        except FileNotFoundError:
            pass
        return entry
