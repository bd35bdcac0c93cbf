"""The simulated ipfw prints what FreeBSD 15.1's own ipfw prints.

tests/fixtures/freebsd-15.1/ipfw: each folder is one host, its commands run
in order (MANIFEST.tsv) by 15.1's ipfw(8) against 15.1's ipfw kernel code,
with jails web (JID 3) and mail (JID 4).  Each is replayed on the simulated
host and compared byte for byte, or the command is one the simulation says it
does not model (exit 70): sets (jailhooks does not use them).
"""
from __future__ import annotations

import pytest

from jailhooks.sim import SimulatedRunner

from .conftest import FIXTURES

MANIFEST = [line.split("\t") for line in (FIXTURES / "MANIFEST.tsv").read_text().splitlines()[1:]]
FOLDERS = ("jail-rules", "refusals", "file", "sets", "nat")
NOT_MODELLED = ("sets",)
READ_ONLY_NOT_MODELLED = {"ipfw table jh_web_users info"}  # kernel internals (kindex, algorithm, size)


def host(tmp_path) -> SimulatedRunner:
    sim = SimulatedRunner(str(tmp_path))
    with sim.state() as st:
        st["next_jid"] = 3
    for name in ("web", "mail"):
        assert sim.run(["/usr/sbin/jail", "-c", f"name={name}", f"path=/j/{name}", "persist"], None, 5,
                       True).returncode == 0
    return sim


@pytest.mark.parametrize("folder", FOLDERS)
def test_ipfw_output_matches_freebsd(tmp_path, folder):
    sim = host(tmp_path)
    steps = [m for m in MANIFEST if m[0].startswith(f"ipfw/{folder}/")]
    assert steps
    for name, status, command in steps:
        argv = command.split()
        stdin = None
        if argv[-1] == "/ABSOLUTE/PATH/TO/file/rules.ipfw":  # ipfw -q FILE: given here as /dev/stdin
            argv[-1], stdin = "/dev/stdin", (FIXTURES / "ipfw" / "file" / "rules.ipfw").read_text()
        res = sim.run(["/sbin/ipfw", *argv[1:]], stdin, 5, True)
        if command in READ_ONLY_NOT_MODELLED:
            assert res.returncode == 70 and "not modelled" in res.stderr
            continue
        if folder in NOT_MODELLED and res.returncode == 70:
            assert "not modelled" in res.stderr
            break  # what follows depends on it
        err = FIXTURES / name.replace(".out", ".err")
        assert (res.stdout, res.stderr, res.returncode) == (
            (FIXTURES / name).read_text(), err.read_text() if err.exists() else "", int(status)), command


def test_a_file_stops_at_its_first_bad_line_and_keeps_the_lines_before(tmp_path):
    sim = host(tmp_path)
    text = "add 100 allow tcp from any to any 443 jail web keep-state\nadd 110 allow ip from any to any bogus\n" \
           "add 120 deny ip from any to any\n"
    res = sim.run(["/sbin/ipfw", "-q", "/dev/stdin"], text, 5, True)
    assert res.returncode == 70 and res.stderr.startswith("Line 2: ")
    listed = sim.run(["/sbin/ipfw", "list"], None, 5, False).stdout.splitlines()
    assert listed[0] == "00100 allow tcp from any to any 443 jail 3 keep-state :default" and len(listed) == 3


def test_a_table_line_longer_than_fgets_reads_is_refused(tmp_path):
    sim = host(tmp_path)
    keys = " ".join(f"{100000 + i} 0" for i in range(500))
    res = sim.run(["/sbin/ipfw", "-q", "/dev/stdin"], f"table t create type number\ntable t add {keys}\n", 5, True)
    assert res.returncode == 70 and "fgets" in res.stderr
