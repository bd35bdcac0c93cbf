"""Exit codes (sysexits(3)) and the exceptions that map onto them.

Every error the user can cause derives from JailhooksError; the CLI turns it
into one line on stderr and its exit code, in exactly one place (main.py).
"""
from __future__ import annotations

from enum import IntEnum


class ExitCode(IntEnum):
    OK = 0
    FAILED = 1  # a phase failed (a plugin or a host command)
    USAGE = 64  # EX_USAGE
    DATAERR = 65  # EX_DATAERR: bad input data (jail name, address, symlink in a jail)
    NOHOST = 68  # EX_NOHOST: no such jail (nothing describes it, and it holds no lease)
    UNAVAILABLE = 69  # EX_UNAVAILABLE: a pool (UIDs, FIBs) is exhausted
    SOFTWARE = 70  # EX_SOFTWARE: a bug in jailhooks or a plugin
    TEMPFAIL = 75  # EX_TEMPFAIL: lock wait exceeded; try again
    NOPERM = 77  # EX_NOPERM
    CONFIG = 78  # EX_CONFIG: config file or plugin loading


class JailhooksError(Exception):
    exit_code = ExitCode.FAILED


class UsageError(JailhooksError):
    exit_code = ExitCode.USAGE


class DataError(JailhooksError):
    exit_code = ExitCode.DATAERR


class UnknownJail(JailhooksError):
    exit_code = ExitCode.NOHOST


class PoolExhausted(JailhooksError):
    exit_code = ExitCode.UNAVAILABLE


class LockTimeout(JailhooksError):
    exit_code = ExitCode.TEMPFAIL


class PermissionDenied(JailhooksError):
    exit_code = ExitCode.NOPERM


class ConfigError(JailhooksError):
    exit_code = ExitCode.CONFIG

    def __init__(self, problems: list[str] | str, source: str = ""):
        self.problems = [problems] if isinstance(problems, str) else list(problems)
        self.source = source
        where = f"{source}: " if source else ""
        super().__init__("; ".join(f"{where}{p}" for p in self.problems))


class PluginLoadError(ConfigError):
    """A plugin could not be imported or registered: never skipped silently."""


class CommandError(JailhooksError):
    """A host command failed; carries argv, status and stderr for the message."""

    def __init__(self, argv: list[str], returncode: int, stderr: str = "", note: str = ""):
        self.argv = list(argv)
        self.returncode = returncode
        self.stderr = stderr
        detail = stderr.strip().splitlines()[-1] if stderr.strip() else note or f"exit status {returncode}"
        shown = " ".join(self.argv) if len(self.argv) <= 10 else " ".join(self.argv[:10]) + " ..."
        super().__init__(f"{shown}: {detail}")
