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

import subprocess
import sys
from typing import BinaryIO, Protocol, TextIO


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
    name = "freebsd"

    def run(self, argv: list[str], input: str | None, timeout: float, mutating: bool) -> Result:
        try:
            proc = subprocess.run(argv, input=input, capture_output=True, text=True, timeout=timeout,
                                  shell=False, check=False, stdin=None if input is not None else subprocess.DEVNULL)
        except subprocess.TimeoutExpired:
            raise CommandTimeout(f"timed out after {timeout:g}s") from None
        except OSError as exc:
            return Result(tuple(argv), 127, "", f"{argv[0]}: {exc.strerror}\n")
        return Result(tuple(argv), proc.returncode, proc.stdout, proc.stderr)

    def stream(self, argv: list[str]) -> Stream:
        return _ProcessStream(argv)


class _ProcessStream:
    """A child whose stdout is read as it comes; its stderr goes to a
    temporary file, so a chatty child can never block on a full pipe."""

    def __init__(self, argv: list[str]):
        import tempfile

        self.argv = tuple(argv)
        self.err = tempfile.TemporaryFile()
        try:
            self.proc: subprocess.Popen | None = subprocess.Popen(
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
