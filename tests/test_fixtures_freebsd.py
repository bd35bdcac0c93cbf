"""The simulated host prints what FreeBSD 15.1's own jls and pfctl print.

Every recorded output in tests/fixtures/freebsd-15.1 (made by FreeBSD's code)
is reproduced byte for byte, or the command is one the simulation says it
does not model (exit 70).  Parsers of those outputs are tested on the same bytes.
"""
from __future__ import annotations

import pytest

from jailhooks.host import parse_jls_json
from jailhooks.pf.syntax import parse
from jailhooks.host.runner import Result
from jailhooks.sim import SimulatedRunner

from .conftest import FIXTURES

MANIFEST = [line.split("\t") for line in (FIXTURES / "MANIFEST.tsv").read_text().splitlines()[1:]]
NOT_MODELLED = {"jls -h", "jls -n", "jls -q -n", "jls -s", "jls --libxo json -n"}


@pytest.fixture(scope="module")
def fixture_host(tmp_path_factory):
    """The three jails of fixtures' jail.conf, created in the same order."""
    sim = SimulatedRunner(str(tmp_path_factory.mktemp("sim")))
    for args in (["name=web", "path=/usr/jails/web", "host.hostname=web.example.org",
                  "ip4.addr=192.0.2.10,192.0.2.11", "ip6.addr=2001:db8::10"],
                 ["name=mail", "path=/usr/jails/mail", "ip4.addr=192.0.2.20"],
                 ["name=db", "path=/usr/jails/db"]):
        assert sim.run(["/usr/sbin/jail", "-c", *args, "persist"], None, 5, True).returncode == 0
    return sim


@pytest.mark.parametrize("name,status,command", [m for m in MANIFEST if m[0].startswith("jls/")],
                         ids=[m[2] for m in MANIFEST if m[0].startswith("jls/")])
def test_jls_output_matches_freebsd(fixture_host, name, status, command):
    res = fixture_host.run(["/usr/sbin/jls", *command.split()[1:]], None, 5, False)
    if command in NOT_MODELLED:
        assert res.returncode == 70 and "not modelled" in res.stderr
        return
    err = FIXTURES / name.replace(".out", ".err")
    assert res.stdout == (FIXTURES / name).read_text()
    assert res.stderr == (err.read_text() if err.exists() else "")
    assert res.returncode == int(status)


@pytest.mark.parametrize("conf", ["web-filter", "web-nat-table", "web-dualstack"])
def test_pfctl_nv_matches_freebsd(tmp_path, conf):
    sim = SimulatedRunner(str(tmp_path))
    path = FIXTURES / "pf" / f"{conf}.conf"
    res = sim.run(["/sbin/pfctl", "-n", "-v", "-a", "jailhooks/web", "-f", str(path)], None, 5, True)
    assert (res.returncode, res.stderr) == (0, "")
    assert res.stdout == (FIXTURES / "pf" / f"{conf}.nv.out").read_text()


@pytest.mark.parametrize("conf", ["web-filter", "web-nat-table", "web-dualstack"])
def test_pfctl_show_after_load_matches_freebsd(tmp_path, conf):
    sim = SimulatedRunner(str(tmp_path))
    text = (FIXTURES / "pf" / f"{conf}.conf").read_text()
    assert sim.run(["/sbin/pfctl", "-a", "jailhooks/web", "-f", "-"], text, 5, True).returncode == 0
    rules = sim.run(["/sbin/pfctl", "-a", "jailhooks/web", "-s", "rules"], None, 5, False)
    assert rules.stdout == (FIXTURES / "pf" / f"{conf}.s-rules.derived.txt").read_text()
    nat_file = FIXTURES / "pf" / f"{conf}.s-nat.derived.txt"
    if nat_file.exists():
        nat = sim.run(["/sbin/pfctl", "-a", "jailhooks/web", "-s", "nat"], None, 5, False)
        assert nat.stdout == nat_file.read_text()


def test_nat_tag_after_target_is_a_syntax_error(tmp_path):
    sim = SimulatedRunner(str(tmp_path))
    path = FIXTURES / "pf" / "nat-tag-after-target.conf"
    res = sim.run(["/sbin/pfctl", "-n", "-v", "-a", "jailhooks/web", "-f", str(path)], None, 5, True)
    assert res.returncode == 1
    assert res.stdout == ""
    expected = (FIXTURES / "pf" / "nat-tag-after-target.nv.err").read_text()
    assert res.stderr == expected.replace("nat-tag-after-target.conf", str(path))


def test_jls_json_parser_reads_real_output():
    out = (FIXTURES / "jls" / "jls-libxo-json-params.out").read_text()
    jails = parse_jls_json(Result(("jls",), 0, out, ""))
    assert [(j["jid"], j["name"], j["ip4"], j["ip6"]) for j in jails] == [
        (1, "web", ["192.0.2.10", "192.0.2.11"], ["2001:db8::10"]),
        (2, "mail", ["192.0.2.20"], []),
        (3, "db", [], []),
    ]
    empty = (FIXTURES / "jls" / "jls-libxo-json-j-nosuch.out").read_text()
    assert parse_jls_json(Result(("jls",), 1, empty, "")) == []


def test_user_range_with_colon_is_refused_like_freebsd():
    # 15.1's parser takes "20000:20999" as a user name (freebsd.md, section 2)
    with pytest.raises(Exception, match="unknown user 20000:20999"):
        parse("pass out proto tcp from any to any user 20000:20999\n", in_anchor=True)
    assert parse("pass out proto tcp from any to any user 19999 >< 21000\n", in_anchor=True).rules


def test_translation_after_filter_is_refused():
    with pytest.raises(Exception, match="Rules must be in order"):
        parse("pass out all\nnat on em0 inet from 10.0.0.5 to any -> 192.0.2.10\n", in_anchor=True)
