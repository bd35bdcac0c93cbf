"""What the simulated host's streaming commands print: the bytes a file of
its daemons (pflogd's pcap file, syslogd's security log) gains from now on,
as they are written, until the command is stopped."""
from __future__ import annotations

import os
import time

POLL = 0.05  # seconds between looks at the file: the simulation's only clock


class Growing:
    """ARGV's stream: FIRST (what the command prints at once), then what PATH
    gains.  A file made after the start, or anew (it shrank: rotated), is
    read from byte HEADER on (its own header, which the command does not
    print again)."""

    def __init__(self, argv: tuple[str, ...], path: str, first: bytes = b"", header: int = 0, stderr: str = ""):
        self.argv, self.path, self.header, self.stderr = argv, path, header, stderr
        self.pending = first
        self.offset = os.path.getsize(path) if os.path.exists(path) else None
        self.stopped = False

    def read(self, size: int) -> bytes:
        while len(self.pending) < size and not self.stopped:
            self._wait()
        data, self.pending = self.pending[:size], self.pending[size:]
        return data

    def readline(self) -> bytes:
        while b"\n" not in self.pending and not self.stopped:
            self._wait()
        line, sep, self.pending = self.pending.partition(b"\n")
        return line + sep

    def _wait(self) -> None:
        if not self._more():
            time.sleep(POLL)

    def _more(self) -> bool:
        if not os.path.exists(self.path):
            return False
        size = os.path.getsize(self.path)
        if self.offset is None or size < self.offset:  # made after the start, or rotated: a new file
            self.offset = self.header
        with open(self.path, "rb") as fh:
            fh.seek(self.offset)
            data = fh.read()
        self.offset += len(data)
        self.pending += data
        return bool(data)

    def close(self):
        from ..host.runner import Result

        self.stopped = True
        return Result(self.argv, 0, "", self.stderr)
