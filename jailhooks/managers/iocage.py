"""iocage: IOCROOT/jails/NAME/config.json; the root is IOCROOT/jails/NAME/root.
jail(8) knows an iocage jail as ``ioc-NAME`` ('.' turned into '_'), which is
what ``$name`` expands to in its exec_created hook."""
from __future__ import annotations

import json
import os

from ..errors import DataError


def iocage_name(kernel_name: str) -> str:
    return kernel_name[4:] if kernel_name.startswith("ioc-") else kernel_name


def read(iocroot: str, jail: str) -> dict | None:
    name = iocage_name(jail)
    path = os.path.join(iocroot, "jails", name, "config.json")
    try:
        with open(path, encoding="utf-8", errors="replace") as fh:
            conf = json.load(fh)
    except FileNotFoundError:
        return None
    except ValueError as exc:
        raise DataError(f"{path}: not valid JSON ({exc})") from None
    except OSError as exc:
        raise DataError(f"{path}: {exc.strerror}") from None
    if not isinstance(conf, dict):
        raise DataError(f"{path}: not a JSON object")

    def addrs(key: str) -> list[str]:
        value = conf.get(key, "none")
        if not isinstance(value, str):
            raise DataError(f"{path}: {key} is not a string")
        if value in ("none", "", "DHCP") or value.startswith("DHCP"):
            return []
        return [v.strip() for v in value.split(",") if v.strip() and not v.strip().endswith("|DHCP")]

    return {"path": os.path.join(iocroot, "jails", name, "root"), "ip4": addrs("ip4_addr"), "ip6": addrs("ip6_addr"),
            "hostname": conf.get("host_hostname") or None,
            "vnet": str(conf.get("vnet", "0")) in ("1", "on", "yes")}
