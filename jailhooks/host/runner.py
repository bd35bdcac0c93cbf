"""Runners: how an argv list reaches the system.

* SubprocessRunner: the real FreeBSD commands; absolute paths, no shell,
  a timeout, stdout/stderr captured.
* SimulatedRunner (jailhooks/sim/): a model of those commands on a state dir.
* DryRunRunner: prints every command that would change something and runs
  only the ones that read (so a dry run still shows real decisions).
"""
from __future__ import annotations

import subprocess
import sys
from typing import Protocol, TextIO


class Result:
    """What a command did: its argv, exit status and output."""

    __slots__ = ("argv", "returncode", "stdout", "stderr")

    def __init__(self, argv: tuple[str, ...], returncode: int, stdout: str = "", stderr: str = "") -> None:
        self.argv, self.returncode, self.stdout, self.stderr = argv, returncode, stdout, stderr

    def __repr__(self) -> str:
        return f"Result({self.argv!r}, {self.returncode}, {self.stdout!r}, {self.stderr!r})"


class CommandTimeout(Exception):
    pass


class Runner(Protocol):
    name: str

    def run(self, argv: list[str], input: str | None, timeout: float, mutating: bool) -> Result:
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
