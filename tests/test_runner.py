"""The runner FreeBSD uses (host/runner.py), on programs every machine has:
an argv, never a shell; input written and output read without a deadlock
whatever their size; the exit status; a missing program; a command that
outlives its timeout is killed."""
from __future__ import annotations

import pytest

from jailhooks.host.runner import CommandTimeout, SubprocessRunner


def test_output_status_and_stderr_come_back_apart():
    res = SubprocessRunner().run(["/bin/sh", "-c", "echo out; echo err >&2; exit 3"], None, 30, False)
    assert (res.returncode, res.stdout, res.stderr) == (3, "out\n", "err\n")


def test_a_large_input_and_output_do_not_deadlock():
    # more than a pipe holds, both ways: cat writes while it is still being fed
    text = "".join(f"pass out quick from <jail_{i}> to any\n" for i in range(20000))
    res = SubprocessRunner().run(["/bin/cat"], text, 60, False)
    assert res.returncode == 0 and res.stdout == text


def test_a_command_that_reads_no_input_still_ends():
    res = SubprocessRunner().run(["/bin/true"], "x" * 500000, 30, False)
    assert res.returncode == 0


def test_the_argv_is_never_a_shell_line():
    res = SubprocessRunner().run(["/bin/echo", "$(id)", ";", "|"], None, 30, False)
    assert res.stdout == "$(id) ; |\n"


def test_a_missing_program_is_127_and_says_so():
    res = SubprocessRunner().run(["/nonexistent/pfctl", "-s", "rules"], None, 30, False)
    assert (res.returncode, res.stderr) == (127, "/nonexistent/pfctl: No such file or directory\n")


def test_a_command_past_its_timeout_is_killed():
    with pytest.raises(CommandTimeout, match="timed out after 0.2s"):
        SubprocessRunner().run(["/bin/sleep", "30"], None, 0.2, False)
