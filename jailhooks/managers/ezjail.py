"""ezjail 3.4: ${PREFIX}/etc/ezjail/SAFENAME, an sh fragment of
``export jail_SAFENAME_KEY="value"`` lines (SAFENAME: the jail name with
every non-alphanumeric character turned into '_')."""
from __future__ import annotations

import os
import re

from ..errors import DataError
from . import read_file


def safename(name: str) -> str:
    return re.sub(r"[^A-Za-z0-9]", "_", name)


def read(directory: str, jail: str) -> dict | None:
    safe = safename(jail)
    for candidate in (safe, f"{safe}.norun"):
        path = os.path.join(directory, candidate)
        text = read_file(path)
        if text is not None:
            break
    else:
        return None
    values: dict[str, str] = {}
    for lineno, line in enumerate(text.splitlines(), 1):
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        m = re.fullmatch(rf'(?:export\s+)?jail_{re.escape(safe)}_([A-Za-z0-9_]+)=(?:"([^"]*)"|\'([^\']*)\'|(\S*))', line)
        if m:
            values[m.group(1)] = next(g for g in m.groups()[1:] if g is not None)
        elif not re.match(r"(export\s+)?[A-Za-z_][A-Za-z0-9_]*=", line):
            raise DataError(f"{path}:{lineno}: not an ezjail variable line")
    ip4, ip6 = [], []
    for item in filter(None, (s.strip() for s in values.get("ip", "").split(","))):
        addr = item.split("|", 1)[-1].split("/", 1)[0]
        (ip6 if ":" in addr else ip4).append(item)
    return {"path": values.get("rootdir") or None, "ip4": ip4, "ip6": ip6,
            "hostname": values.get("hostname") or None, "fib": values.get("fib")}
