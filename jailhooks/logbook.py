"""What jailhooks leaves with syslogd(8): every phase's summary and failures,
every refusal (a config or plugin error, a lock timeout, bad data), every
change an admin command makes, and what plugins log through ``ctx.log``.
A fail-closed refusal at 3 a.m. must be in /var/log/messages.

On FreeBSD only (elsewhere the simulated host is in use, and nothing is
sent); the facility is ``[host] syslog_facility`` (default daemon).  The
C-level syslog module is cheap to import, so the hook path pays nothing
else for it.
"""
from __future__ import annotations

import sys

FACILITIES = ("daemon", "user", "security", "auth", "local0", "local1", "local2", "local3", "local4", "local5",
              "local6", "local7")
ENABLED = sys.platform.startswith("freebsd")
_facility = "daemon"


def configure(facility: str) -> None:
    global _facility
    _facility = facility


def log(priority: str, line: str) -> None:
    """PRIORITY: err, warning, notice or info."""
    if not ENABLED:
        return
    import syslog

    syslog.openlog("jailhooks", syslog.LOG_PID, getattr(syslog, f"LOG_{_facility.upper()}"))
    syslog.syslog(getattr(syslog, f"LOG_{priority.upper()}"), line.replace("\n", " "))


def handler():
    """A logging handler for the "jailhooks" logger (``ctx.log``)."""
    import logging

    class ToSyslog(logging.Handler):
        def emit(self, record: logging.LogRecord) -> None:
            level = ("err" if record.levelno >= logging.ERROR else "warning" if record.levelno >= logging.WARNING
                     else "notice" if record.levelno >= logging.INFO else "info")
            log(level, f"{record.name}: {record.getMessage()}")

    return ToSyslog()
