"""A jail's own record of its UID block: one marker line in its etc/pw.conf.

The registry is the truth; the marker is its backup inside each jail, so that
a lost registry can be rebuilt from the jails (``jailhooks registry
recover``) and a fresh registry never hands a held block to another jail.
The uids plugin writes it with the jail's pw.conf; the core reads it (recover,
release).  A jail's files are its root's: what the marker says is hostile
until checked (registry.sql.checked_lease), and every access goes through
jailfs, which never follows a link the jail planted.
"""
from __future__ import annotations

import os

from . import jailfs
from .errors import JailhooksError

MARK = "# jailhooks: UIDs "


def marker(lease) -> str:
    """The line jailhooks keeps in a jail's etc/pw.conf: which block it gave
    which jail, so that a lost registry can be rebuilt from the jails."""
    return f"{MARK}{lease.uid_first}-{lease.uid_last} of jail {lease.jail} (jailhooks registry recover reads this)"


def claim_of(path: str | None) -> dict | None:
    """The block a jail's etc/pw.conf says jailhooks gave it, as a lease
    record (unvalidated: a jail's own files are hostile), or None."""
    if not path or os.path.realpath(path) == "/":
        return None
    try:
        text = jailfs.read_text(path, "etc/pw.conf") or ""
    except JailhooksError:
        return None
    for line in text.splitlines():
        if line.startswith(MARK):
            words = line[len(MARK):].split()
            if len(words) >= 4 and words[1:3] == ["of", "jail"] and words[0].count("-") == 1:
                first, last = words[0].split("-")
                if first.isdigit() and last.isdigit():
                    return {"jail": words[3], "uid_first": int(first), "uid_last": int(last)}
    return None


def forget_claim(path: str | None, jail: str) -> bool:
    """After a release: take the marker out of the jail's etc/pw.conf, so that
    a jail made again under that name is not taken for a lost lease.  Best
    effort (the jail's root may be gone already); True if one was removed."""
    claim = claim_of(path)
    if claim is None or claim["jail"] != jail:
        return False
    text = jailfs.read_text(path, "etc/pw.conf") or ""  # type: ignore[arg-type]
    kept = [line for line in text.splitlines() if not line.startswith(MARK)]
    jailfs.write_text(path, "etc/pw.conf", "\n".join(kept) + "\n" if kept else "")  # type: ignore[arg-type]
    return True
