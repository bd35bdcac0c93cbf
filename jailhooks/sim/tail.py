"""The simulated tail(1), as ``log --follow`` runs it under ipfw: ``tail -F
-n 0 FILE`` writes each line appended to FILE from now on, until it is
stopped; -F follows FILE when newsyslog rotates it, and waits for a FILE
that does not exist yet (usr.bin/tail/tail.c: ENOENT is no error with -F).

From FreeBSD 15.1's usr.bin/tail/tail.c: its getopt_long optstring
"+Fb:c:fn:qrv" and its usage (exit 1).  Only ``-F -n 0`` on a file of the
simulated host (its syslogd's security log) is modelled.
"""
from __future__ import annotations

import os
import time

from .getopt import not_modelled, options

USAGE = "usage: tail [-F | -f | -r] [-q] [-b # | -c # | -n #] [file ...]\n"
POLL = 0.05  # seconds between looks at the file: the simulation's only clock


def follow(args: list[str], err: list[str], simdir: str) -> int:
    """Check a follow's arguments as tail does; 0 when it would run."""
    _, opts, files = options(args, "tail", "+Fb:c:fn:qrv", "Fn", USAGE, 1, err)
    given = dict(opts)
    if "-F" not in given or given.get("-n") != "0" or len(files) != 1:
        return not_modelled("tail", "anything but tail -F -n 0 FILE", err)
    if os.path.dirname(os.path.abspath(files[0])) != os.path.abspath(simdir):
        return not_modelled("tail", f"a file outside the simulated host ({files[0]})", err)
    return 0


class Tail:
    """What is appended to PATH from now on (from its start when it is made anew)."""

    def __init__(self, argv: tuple[str, ...], path: str):
        self.argv, self.path = argv, path
        self.offset = os.path.getsize(path) if os.path.exists(path) else 0
        self.pending = b""
        self.stopped = False

    def read(self, size: int) -> bytes:
        while len(self.pending) < size and not self.stopped:
            if not self._more():
                time.sleep(POLL)
        data, self.pending = self.pending[:size], self.pending[size:]
        return data

    def readline(self) -> bytes:
        while b"\n" not in self.pending and not self.stopped:
            if not self._more():
                time.sleep(POLL)
        line, sep, self.pending = self.pending.partition(b"\n")
        return line + sep

    def _more(self) -> bool:
        if not os.path.exists(self.path):
            return False
        size = os.path.getsize(self.path)
        if size < self.offset:  # rotated: a new file, read from its start
            self.offset = 0
        with open(self.path, "rb") as fh:
            fh.seek(self.offset)
            data = fh.read()
        self.offset += len(data)
        self.pending += data
        return bool(data)

    def close(self):
        from ..host.runner import Result

        self.stopped = True
        return Result(self.argv, 0, "", "")
