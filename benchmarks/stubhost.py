"""A stand-in FreeBSD for benchmarking the real host layer.

jailhooks runs with ``[host] mode = "freebsd"``: its SubprocessRunner forks
and execs absolute paths, exactly as on a jail host.  The paths point at
small /bin/sh scripts (``[host.commands]``, the table an admin uses for tools
installed elsewhere; no switch is added for benchmarks).  Each script logs its
argv (so commands can be counted) and answers a read-only command with what
the simulated FreeBSD 15.1 model printed for the same argv at the same stage
(jls and pfctl output byte for byte, see tests/fixtures/freebsd-15.1); a
command that changes something just succeeds.  The answers are kept as sh
code (one ``printf``, sourced), so a command costs a fork and an exec of sh
with builtins only, whether it prints or not, as the sh hook's commands do:
printing is not charged to jailhooks alone.  The simulator is only used
beforehand, to record answers; it is never in what is measured.
"""
from __future__ import annotations

import os
from contextlib import contextmanager
from pathlib import Path
from typing import Iterator

TOOLS = {"pfctl": "/sbin/pfctl", "sysctl": "/sbin/sysctl", "jls": "/usr/sbin/jls", "jail": "/usr/sbin/jail",
         "route": "/sbin/route"}

STUB = """#!/bin/sh
printf '%s\\n' "{tool} $*" >> {log}
IFS=_
key="$*"
read -r stage < {answers}/stage || stage=none
f="{answers}/$stage/{tool}/$key"
case "$key" in *_-f_-) while read -r _; do :; done; exit 0 ;; esac
[ -e "$f.rc" ] || exit 0
[ -e "$f.out" ] && . "$f.out"
[ -e "$f.err" ] && . "$f.err" >&2
read -r rc < "$f.rc"
exit "$rc"
"""


class StubHost:
    def __init__(self, root: Path) -> None:
        self.root = root
        self.bin = root / "bin"
        self.answers = root / "answers"
        self.log = root / "commands.log"
        self.bin.mkdir(parents=True, exist_ok=True)
        self.answers.mkdir(exist_ok=True)
        for tool in TOOLS:
            path = self.bin / tool
            path.write_text(STUB.format(tool=tool, log=self.log, answers=self.answers))
            path.chmod(0o755)
        self.stage("none")

    def commands_toml(self) -> str:
        return "[host.commands]\n" + "".join(f'{tool} = "{self.bin / tool}"\n' for tool in TOOLS)

    def stage(self, name: str) -> None:
        (self.answers / "stage").write_text(name + "\n")

    def record(self, stage: str, tool: str, args: list[str], stdout: str, stderr: str, rc: int) -> None:
        key = "_".join(args)
        assert ".." not in key.split("/"), key
        base = self.answers / stage / tool / key
        base.parent.mkdir(parents=True, exist_ok=True)
        for suffix, text in ((".out", stdout), (".err", stderr)):
            if text:  # sh code that prints TEXT byte for byte with one builtin
                Path(f"{base}{suffix}").write_text("printf '%s' '" + text.replace("'", "'\\''") + "'\n")
        Path(f"{base}.rc").write_text(f"{rc}\n")

    def commands(self) -> list[str]:
        return self.log.read_text().splitlines() if self.log.exists() else []

    def clear_log(self) -> None:
        if self.log.exists():
            self.log.unlink()


@contextmanager
def recording(stub: StubHost, stage: str) -> Iterator[None]:
    """Record what the simulated host answers to every read-only command run
    inside the block, as STAGE's answers of the stub commands."""
    from jailhooks.sim import SimulatedRunner

    real = SimulatedRunner.run

    def run(self, argv, input, timeout, mutating):
        res = real(self, argv, input, timeout, mutating)
        if not mutating:
            stub.record(stage, os.path.basename(argv[0]), list(argv[1:]), res.stdout, res.stderr, res.returncode)
        return res

    SimulatedRunner.run = run  # type: ignore[method-assign]
    try:
        yield
    finally:
        SimulatedRunner.run = real  # type: ignore[method-assign]
