"""Log files a firewall writes through a daemon (pflogd's pcap file, the
security log syslogd keeps for ipfw), with newsyslog's rotated copies:
FILE.0 (or FILE.0.bz2, FILE.0.gz: newsyslog.conf's J and Z flags), FILE.1
..., the highest number the oldest."""
from __future__ import annotations

import bz2
import gzip
import os
from typing import BinaryIO


def rotated(path: str) -> list[str]:
    """PATH's rotated copies, oldest first, then PATH (each only if it exists)."""
    found = []
    for n in range(100):
        copies = [f"{path}.{n}{ext}" for ext in ("", ".bz2", ".gz") if os.path.exists(f"{path}.{n}{ext}")]
        if not copies:
            break
        found.append(copies[0])
    return list(reversed(found)) + ([path] if os.path.exists(path) else [])


def on_host(settings, host, path: str, default: str, simulated: str) -> str:
    """The log at PATH (a config key's value); on the simulated host, while
    PATH is DEFAULT, the simulated daemon's file STATE_DIR/simhost/SIMULATED."""
    if host.mode.startswith("simulated") and path == default:
        return os.path.join(settings.state_dir, "simhost", simulated)
    return path


def of_host(settings, host, path: str, default: str, simulated: str) -> list[str]:
    """on_host's log and its rotated copies, oldest first."""
    return rotated(on_host(settings, host, path, default, simulated))


def open_log(path: str) -> BinaryIO:
    """PATH, or its rotated form: newsyslog compresses with bzip2 or gzip."""
    if path.endswith(".bz2"):
        return bz2.open(path, "rb")  # type: ignore[return-value]
    if path.endswith(".gz"):
        return gzip.open(path, "rb")  # type: ignore[return-value]
    return open(path, "rb")
