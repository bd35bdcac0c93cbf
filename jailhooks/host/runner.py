"""Runners: how an argv list reaches the system.

* SubprocessRunner: the real FreeBSD commands; absolute paths, no shell,
  a timeout, stdout/stderr captured.
* SimulatedRunner (jailhooks/sim/): a model of those commands on a state dir.
* DryRunRunner: prints every command that would change something and runs
  only the ones that read (so a dry run still shows real decisions).

A command that runs until it is stopped (tcpdump on pflog0) is a Stream:
its stdout read as it comes, its exit status and stderr when it is closed.
"""
from __future__ import annotations

import os
import sys

TYPE_CHECKING = False  # no typing at run time (main.py)
if TYPE_CHECKING:
    from typing import BinaryIO, Protocol, TextIO
else:
    Protocol = object  # Stream and Runner below are interfaces for type checkers; at run time, documentation


class Result:
    """What a command did: its argv, exit status and output."""

    __slots__ = ("argv", "returncode", "stdout", "stderr")

    def __init__(self, argv: tuple[str, ...], returncode: int, stdout: str = "", stderr: str = "") -> None:
        self.argv, self.returncode, self.stdout, self.stderr = argv, returncode, stdout, stderr

    def __repr__(self) -> str:
        return f"Result({self.argv!r}, {self.returncode}, {self.stdout!r}, {self.stderr!r})"


class CommandTimeout(Exception):
    pass


class Stream(Protocol):
    """A command that runs until it is stopped: ``read`` or ``readline`` its
    stdout as it comes (b"" once it has ended); ``close`` stops it if it
    still runs and gives its Result (exit status and stderr)."""

    def read(self, size: int) -> bytes:
        ...

    def readline(self) -> bytes:
        ...

    def close(self) -> Result:
        ...


class Runner(Protocol):
    name: str

    def run(self, argv: list[str], input: str | None, timeout: float, mutating: bool) -> Result:
        ...

    def stream(self, argv: list[str]) -> Stream:
        ...


class SubprocessRunner:
    """Each command spawned with os.posix_spawn, its input written and its
    output read through pipes with select(2), then reaped with one blocking
    waitpid: what subprocess.run does, without importing subprocess (with
    signal, threading, selectors and locale: about 10 ms of every hook
    process; main.py lists the start-up tuning)."""

    name = "freebsd"

    def run(self, argv: list[str], input: str | None, timeout: float, mutating: bool) -> Result:
        import select
        import time

        deadline = time.monotonic() + timeout
        out_r, out_w = os.pipe()  # os.pipe's ends are close-on-exec: the child keeps only 0, 1 and 2
        err_r, err_w = os.pipe()
        in_r, in_w = os.pipe() if input is not None else (os.open(os.devnull, os.O_RDONLY), -1)
        try:
            pid = os.posix_spawn(argv[0], argv, os.environ, file_actions=[
                (os.POSIX_SPAWN_DUP2, in_r, 0), (os.POSIX_SPAWN_DUP2, out_w, 1), (os.POSIX_SPAWN_DUP2, err_w, 2)])
        except OSError as exc:
            for fd in (out_r, out_w, err_r, err_w, in_r, in_w):
                if fd >= 0:
                    os.close(fd)
            return Result(tuple(argv), 127, "", f"{argv[0]}: {exc.strerror}\n")
        for fd in (out_w, err_w, in_r):
            os.close(fd)
        data = (input or "").encode()
        chunks: dict[int, list[bytes]] = {out_r: [], err_r: []}
        if in_w >= 0:
            os.set_blocking(in_w, False)  # select says "room", not how much: a write must not wait for more
        try:
            while _open(chunks) or in_w >= 0:
                left = deadline - time.monotonic()
                if left <= 0:
                    os.kill(pid, 9)  # SIGKILL; the signal module is not loaded for its name
                    os.waitpid(pid, 0)
                    raise CommandTimeout(f"timed out after {timeout:g}s")
                readable, writable, _ = select.select(list(_open(chunks)), [in_w] if in_w >= 0 else [], [], left)
                for fd in readable:
                    chunks[fd].append(os.read(fd, 65536))  # b"": its end
                if writable:
                    try:
                        data = data[os.write(in_w, data[:65536]):]
                    except BlockingIOError:
                        pass
                    except BrokenPipeError:  # the command stopped reading: what it read is what it got
                        data = b""
                    if not data:
                        os.close(in_w)
                        in_w = -1
            _, status = os.waitpid(pid, 0)  # its output ended: it is exiting
        finally:
            for fd in (out_r, err_r, in_w):
                if fd >= 0:
                    os.close(fd)
        return Result(tuple(argv), os.waitstatus_to_exitcode(status), _text(chunks[out_r]), _text(chunks[err_r]))

    def stream(self, argv: list[str]) -> Stream:
        return _ProcessStream(argv)


def _open(chunks: dict[int, list[bytes]]) -> set[int]:
    """The pipes of CHUNKS not at their end yet (an empty chunk marks it)."""
    return {fd for fd, got in chunks.items() if not got or got[-1]}


def _text(chunks: list[bytes]) -> str:
    return b"".join(chunks).decode("utf-8", "replace")


class _ProcessStream:
    """A child whose stdout is read as it comes; its stderr goes to a
    temporary file, so a chatty child can never block on a full pipe."""

    def __init__(self, argv: list[str]):
        import subprocess
        import tempfile

        self.argv = tuple(argv)
        self.err = tempfile.TemporaryFile()
        try:
            self.proc: "subprocess.Popen | None" = subprocess.Popen(
                argv, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=self.err, shell=False)
        except OSError as exc:
            self.proc, self.failed = None, f"{argv[0]}: {exc.strerror}\n"

    def read(self, size: int) -> bytes:
        if self.proc is None:
            return b""
        stdout: BinaryIO = self.proc.stdout  # type: ignore[assignment]
        return stdout.read(size)

    def readline(self) -> bytes:
        if self.proc is None:
            return b""
        stdout: BinaryIO = self.proc.stdout  # type: ignore[assignment]
        return stdout.readline()

    def close(self) -> Result:
        import subprocess

        if self.proc is None:
            return Result(self.argv, 127, "", self.failed)
        if self.proc.poll() is None:
            self.proc.terminate()  # SIGTERM: tcpdump flushes and exits
        try:
            rc = self.proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            rc = self.proc.wait()
        self.proc.stdout.close()  # type: ignore[union-attr]
        self.err.seek(0)
        stderr = self.err.read().decode("utf-8", "replace")
        self.err.close()
        return Result(self.argv, rc, "", stderr)


class DryRunRunner:
    def __init__(self, inner: Runner, out: TextIO | None = None):
        self.inner = inner
        self.name = f"{inner.name}, dry run"
        self.out = out or sys.stdout  # the plan, on stdout like the rest of the report

    def run(self, argv: list[str], input: str | None, timeout: float, mutating: bool) -> Result:
        if not mutating:
            return self.inner.run(argv, input, timeout, mutating)
        import shlex

        self.out.write(f"would run: {shlex.join(argv)}\n")
        if input:
            for line in input.rstrip("\n").split("\n"):
                self.out.write(f"    | {line}\n")
        return Result(tuple(argv), 0, "", "")

    def stream(self, argv: list[str]) -> Stream:
        return self.inner.stream(argv)  # only ever reads
