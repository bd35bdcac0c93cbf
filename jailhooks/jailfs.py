"""Reading and writing files inside a jail's root without following symlinks.

The jail's root user owns everything below the jail path and can plant
symlinks there to make a root process on the host read or overwrite host
files (the iocage/libioc bug class).  So every component below the root is
opened relative to its parent's descriptor with O_NOFOLLOW, files are
replaced by writing a temporary file in the same directory and renaming it
over the target (rename replaces a directory entry, it never follows it), and
modes are set on the descriptor, never by path.
"""
from __future__ import annotations

import errno
import os
import stat
from contextlib import contextmanager

TYPE_CHECKING = False  # no typing at run time (main.py)
if TYPE_CHECKING:
    from typing import Iterator

from . import validate
from .errors import DataError

_SYMLINK_ERRNOS = {errno.ELOOP, errno.EMLINK}  # Linux: ELOOP; FreeBSD O_NOFOLLOW: EMLINK
_DIR_FLAGS = os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | getattr(os, "O_CLOEXEC", 0)



@contextmanager
def locked(directory: str, name: str, timeout: float, held: str) -> Iterator[None]:
    """An exclusive flock on DIRECTORY/NAME (a host's own state, never in a
    jail), waiting at most TIMEOUT seconds; LockTimeout says HELD then."""
    import fcntl
    import time

    from .errors import LockTimeout

    os.makedirs(directory, mode=0o700, exist_ok=True)
    fd = os.open(os.path.join(directory, name), os.O_RDWR | os.O_CREAT | os.O_NOFOLLOW, 0o600)
    try:
        deadline = time.monotonic() + timeout
        while True:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                break
            except OSError as exc:
                if exc.errno not in (errno.EWOULDBLOCK, errno.EAGAIN):
                    raise
                if time.monotonic() >= deadline:
                    raise LockTimeout(f"{held}; gave up after {timeout:g}s") from None
                time.sleep(0.02)
        yield
    finally:
        os.close(fd)


MAX_FILE = 1 << 20  # a jail's pw.conf or passwd is never this large; a bigger one is refused, not cut

def _split(relpath: str) -> list[str]:
    parts = [p for p in relpath.split("/") if p not in ("", ".")]
    if not parts or ".." in parts:
        raise DataError(f"bad path inside a jail: {relpath!r}")
    return parts


@contextmanager
def _parent_dir(root: str, parts: list[str], create: bool = False) -> Iterator[int]:
    """A descriptor of the directory holding parts[-1], opened step by step."""
    try:
        fd = os.open(root, os.O_RDONLY | os.O_DIRECTORY | getattr(os, "O_CLOEXEC", 0))
    except OSError as exc:
        raise DataError(f"jail root {root}: {exc.strerror}") from None
    try:
        walked = root.rstrip("/")
        for part in parts[:-1]:
            walked = f"{walked}/{part}"
            try:
                nxt = os.open(part, _DIR_FLAGS, dir_fd=fd)
            except FileNotFoundError:
                if not create:
                    raise
                os.mkdir(part, 0o755, dir_fd=fd)
                nxt = os.open(part, _DIR_FLAGS, dir_fd=fd)
            except OSError as exc:
                if exc.errno in _SYMLINK_ERRNOS or exc.errno == errno.ENOTDIR:
                    _refuse_if_link(fd, part, walked)
                raise DataError(f"{walked}: {exc.strerror}") from None
            os.close(fd)
            fd = nxt
        yield fd
    finally:
        os.close(fd)


def _refuse_if_link(dir_fd: int, name: str, shown: str) -> None:
    try:
        st = os.stat(name, dir_fd=dir_fd, follow_symlinks=False)
    except FileNotFoundError:
        return
    if stat.S_ISLNK(st.st_mode):
        raise DataError(f"{shown} is a symbolic link inside the jail; refusing to follow it")


def read_text(root: str, relpath: str) -> str | None:
    """The file's text, or None if it does not exist."""
    parts = _split(relpath)
    shown = f"{root.rstrip('/')}/{'/'.join(parts)}"
    try:
        with _parent_dir(root, parts) as dfd:
            _refuse_if_link(dfd, parts[-1], shown)
            try:
                # O_NONBLOCK: a FIFO planted by the jail must not hang the host
                fd = os.open(parts[-1], os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | getattr(os, "O_CLOEXEC", 0),
                             dir_fd=dfd)
            except FileNotFoundError:
                return None
            except OSError as exc:
                if exc.errno in _SYMLINK_ERRNOS:
                    raise DataError(f"{shown} is a symbolic link inside the jail; refusing to follow it") from None
                raise DataError(f"{shown}: {exc.strerror}") from None
            if not stat.S_ISREG(os.fstat(fd).st_mode):  # a directory, FIFO or device planted by the jail
                os.close(fd)
                raise DataError(f"{validate.escaped(shown)} is not a regular file")
            with os.fdopen(fd, "rb") as fh:
                os.set_blocking(fh.fileno(), True)
                data = fh.read(MAX_FILE + 1)
                if len(data) > MAX_FILE:
                    raise DataError(f"{shown} is larger than {MAX_FILE >> 20} MiB; left as it is")
                # surrogateescape: bytes that are not UTF-8 come back unchanged on write
                return data.decode("utf-8", "surrogateescape")
    except FileNotFoundError:
        return None


def stat_in(root: str, relpath: str) -> os.stat_result | None:
    """lstat of a file inside a jail, None if it is not there; a DataError
    when a directory on the way is a link (never followed)."""
    parts = _split(relpath)
    try:
        with _parent_dir(root, parts) as dfd:
            return os.stat(parts[-1], dir_fd=dfd, follow_symlinks=False)
    except FileNotFoundError:
        return None


def replace_in(dfd: int, name: str, data: bytes, mode: int, clean: bool = False) -> None:
    """The one way jailhooks replaces a file (NAME in the directory open as
    DFD): a new file beside it (O_EXCL, no symlink followed), written and
    fsync'ed, renamed over the old one, then the directory fsync'ed, so that
    a crash or a power cut leaves the old file or the new one, never a torn
    or an empty one.  CLEAN: first remove what a killed run left (in a jail's
    directory; jailhooks' own directories hold thousands of kept anchors)."""
    prefix = f".{name}.jailhooks."
    if clean:
        for stale in os.listdir(dfd):  # left by a run that was killed mid-write
            if stale.startswith(prefix):
                os.unlink(stale, dir_fd=dfd)
    tmp = f"{prefix}{os.getpid()}"
    try:  # a leftover of this very name (a killed run with our pid): unlinked, never written through
        os.unlink(tmp, dir_fd=dfd)
    except FileNotFoundError:
        pass
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | getattr(os, "O_CLOEXEC", 0),
                 0o600, dir_fd=dfd)
    try:
        with os.fdopen(fd, "wb") as fh:
            fh.write(data)
            fh.flush()
            os.fchmod(fh.fileno(), mode)
            os.fsync(fh.fileno())
        os.rename(tmp, name, src_dir_fd=dfd, dst_dir_fd=dfd)
        os.fsync(dfd)  # the rename itself is durable
    except BaseException:
        try:
            os.unlink(tmp, dir_fd=dfd)
        except OSError:
            pass
        raise


def replace_file(path: str, data: bytes, mode: int = 0o600) -> None:
    """replace_in() for a file of the host's own (the config jail.conf,
    jailhooks' state): its directory is opened as it is named."""
    directory, name = os.path.split(os.path.abspath(path))
    dfd = os.open(directory, os.O_RDONLY | getattr(os, "O_DIRECTORY", 0) | getattr(os, "O_CLOEXEC", 0))
    try:
        replace_in(dfd, name, data, mode)
    finally:
        os.close(dfd)


def keep_state(directory: str, name: str, text: str | None) -> None:
    """Keep TEXT as DIRECTORY/NAME in jailhooks' own state (the directory
    0700, the file 0600, replaced atomically), or forget it (None).  The
    jail's lock is held by the caller, so one temporary name per file does."""
    path = os.path.join(directory, name)
    if text is None:
        try:
            os.unlink(path)
        except FileNotFoundError:
            pass
        return
    os.makedirs(directory, mode=0o700, exist_ok=True)
    replace_file(path, text.encode("utf-8"), 0o600)


def write_text(root: str, relpath: str, text: str, mode: int = 0o644) -> None:
    """Replace the file atomically; refuse if it (or a directory above it) is a symlink."""
    parts = _split(relpath)
    shown = f"{root.rstrip('/')}/{'/'.join(parts)}"
    try:
        with _parent_dir(root, parts, create=False) as dfd:
            name = parts[-1]
            _refuse_if_link(dfd, name, shown)
            try:
                mode = stat.S_IMODE(os.stat(name, dir_fd=dfd, follow_symlinks=False).st_mode)
            except FileNotFoundError:
                pass
            replace_in(dfd, name, text.encode("utf-8", "surrogateescape"), mode, clean=True)
    except FileNotFoundError as exc:
        raise DataError(f"{shown}: directory missing ({exc.strerror})") from None


def remove(root: str, relpath: str) -> None:
    """Remove the directory entry (a symlink itself, never its target)."""
    parts = _split(relpath)
    try:
        with _parent_dir(root, parts) as dfd:
            os.unlink(parts[-1], dir_fd=dfd)
    except FileNotFoundError:
        pass


def accounts(root: str, relpath: str) -> list[tuple[str, int]]:
    """(name, id) of each entry of a jail's etc/passwd or etc/group (the third
    field), comments and malformed lines left out; [] if the file is missing."""
    found = []
    for line in (read_text(root, relpath) or "").splitlines():
        parts = line.split(":")
        if len(parts) > 2 and not line.startswith("#") and parts[2].isascii() and parts[2].isdigit():
            if len(parts[2]) > 10 or int(parts[2]) > UID_MAX:
                raise DataError(f"{validate.escaped(root.rstrip('/'))}/{relpath}: account "
                                f"{validate.shown(parts[0], 32)} has id {validate.shown(parts[2], 24)}, beyond "
                                f"{UID_MAX} (uid_t is 32 bits): not a FreeBSD account file")
            found.append((parts[0], int(parts[2])))
    return found


UID_MAX = 4294967295  # (uid_t)-1
