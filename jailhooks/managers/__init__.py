"""Readers of the jail managers' own configuration (read-only).

Each reader answers "what are jail NAME's path and addresses?" from the files
its manager writes, tolerates keys it does not know, and reports a broken
file as a DataError naming the file (and line).  Used by the built-in
``managers`` plugin through the facts hook.
"""

MAX_FILE = 4 << 20
_READ: list[str] = []  # every file read here in this process: what a jail's facts depend on (plan.py)


def files_read() -> list[str]:
    return list(_READ)


def note_read(path: str) -> None:
    """PATH was looked at (a file's existence, a directory's entries)."""
    _READ.append(path)


def read_file(path: str) -> str | None:
    """A manager's file as text (UTF-8 whatever the locale, a stray byte
    replaced), or None if it does not exist.  Never hangs on a FIFO and never
    reads a device or a directory: a one-line DataError naming the file."""
    import os
    import stat

    from ..errors import DataError

    _READ.append(path)
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK | getattr(os, "O_CLOEXEC", 0))
    except FileNotFoundError:
        return None
    except OSError as exc:
        raise DataError(f"{path}: {exc.strerror}") from None
    with os.fdopen(fd, "rb") as fh:
        st = os.fstat(fh.fileno())
        if not stat.S_ISREG(st.st_mode):
            raise DataError(f"{path}: not a regular file")
        if st.st_size > MAX_FILE:
            raise DataError(f"{path}: larger than {MAX_FILE >> 20} MiB")
        os.set_blocking(fh.fileno(), True)
        return fh.read(MAX_FILE + 1).decode("utf-8", "replace")


def canonical_name(settings, name: str) -> str:
    """One jail, one name: the name the kernel knows it by.  iocage runs its
    jails as ``ioc-NAME``, and jailhooks' hooks see that name; an admin types
    ``NAME``.  Both must reach the same lease and anchor, so an iocage jail's
    short name becomes ``ioc-NAME`` before any lease or anchor is touched
    (unless [jail.NAME] in the config says the short name is its own jail)."""
    import os

    sec = settings.section("managers")
    if "iocage" in sec.get("readers", ()):
        note_read(os.path.join(sec["iocroot"], "jails", name, "config.json"))
    if ("iocage" not in sec.get("readers", ()) or name.startswith("ioc-") or name in settings.jails
            or not os.path.isfile(os.path.join(sec["iocroot"], "jails", name, "config.json"))):
        return name
    return f"ioc-{name}"
