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

from .getopt import not_modelled, options

USAGE = "usage: tail [-F | -f | -r] [-q] [-b # | -c # | -n #] [file ...]\n"


def follow(args: list[str], err: list[str], simdir: str) -> int:
    """Check a follow's arguments as tail does; 0 when it would run."""
    _, opts, files = options(args, "tail", "+Fb:c:fn:qrv", "Fn", USAGE, 1, err)
    given = dict(opts)
    if "-F" not in given or given.get("-n") != "0" or len(files) != 1:
        return not_modelled("tail", "anything but tail -F -n 0 FILE", err)
    if os.path.dirname(os.path.abspath(files[0])) != os.path.abspath(simdir):
        return not_modelled("tail", f"a file outside the simulated host ({files[0]})", err)
    return 0
