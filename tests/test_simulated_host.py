"""The simulated host checks arguments and fails the way FreeBSD's tools do
(pfctl-messages.md gives the 15.1 formats)."""
from __future__ import annotations

import pytest

from jailhooks.host.runner import CommandTimeout
from jailhooks.sim import SimulatedRunner


@pytest.fixture
def sim(tmp_path):
    return SimulatedRunner(str(tmp_path))


def run(sim, *argv, input=None):
    return sim.run(list(argv), input, 5, True)


RULES = 'table <t> const { 192.0.2.10 }\npass out quick proto tcp from <t> to any port 80 keep state label "x"\n'


def test_flush_all_on_an_anchor_prints_the_five_lines(sim):
    run(sim, "/sbin/pfctl", "-a", "jailhooks/web", "-f", "-", input=RULES)
    res = run(sim, "/sbin/pfctl", "-a", "jailhooks/web", "-F", "all")
    assert res.returncode == 0
    assert res.stderr == "Ethernet rules cleared\nrules cleared\nnat cleared\n1 tables deleted.\nrules cleared\n"
    assert run(sim, "/sbin/pfctl", "-q", "-a", "jailhooks/web", "-F", "all").stderr == ""


def test_show_anchors_lists_children_and_drops_empty_ones(sim):
    run(sim, "/sbin/pfctl", "-a", "jailhooks/web", "-f", "-", input=RULES)
    run(sim, "/sbin/pfctl", "-a", "jailhooks/mail", "-f", "-", input=RULES)
    assert run(sim, "/sbin/pfctl", "-s", "Anchors").stdout == "  jailhooks\n  jailhooks/mail\n  jailhooks/web\n"
    run(sim, "/sbin/pfctl", "-q", "-a", "jailhooks/web", "-F", "all")
    assert run(sim, "/sbin/pfctl", "-a", "jailhooks", "-s", "Anchors").stdout == "  jailhooks/mail\n"
    missing = run(sim, "/sbin/pfctl", "-a", "nosuch", "-s", "Anchors")
    assert (missing.returncode, missing.stderr) == (1, "pfctl: Anchor does not exist.\n")
    rules = run(sim, "/sbin/pfctl", "-a", "nosuch", "-s", "rules")  # exit 0: read the output, not the rc
    assert (rules.returncode, rules.stdout, rules.stderr) == (0, "", "pfctl: Anchor does not exist.\n")
    tables = run(sim, "/sbin/pfctl", "-a", "nosuch", "-s", "Tables")  # pfctl_table.c: radix_perror(), exit 1
    assert (tables.returncode, tables.stdout, tables.stderr) == (1, "", "pfctl: Anchor or Ruleset does not exist.\n")


def test_load_failure_keeps_the_old_anchor(sim):
    run(sim, "/sbin/pfctl", "-a", "jailhooks/web", "-f", "-", input=RULES)
    before = run(sim, "/sbin/pfctl", "-a", "jailhooks/web", "-s", "rules").stdout
    bad = run(sim, "/sbin/pfctl", "-a", "jailhooks/web", "-f", "-", input="pass out all\nbogus rule\n")
    assert bad.returncode == 1
    assert bad.stderr == "stdin:2: syntax error\npfctl: Syntax error in config file: pf rules not loaded\n"
    assert run(sim, "/sbin/pfctl", "-a", "jailhooks/web", "-s", "rules").stdout == before


def test_kill_states_messages(sim):
    sim.add_state("192.0.2.10", "198.51.100.1", "jailhooks:web")
    sim.add_state("198.51.100.2", "192.0.2.10")
    sim.add_state("192.0.2.99", "198.51.100.1")
    assert run(sim, "/sbin/pfctl", "-k", "192.0.2.10").stderr == "killed 1 states from 1 sources and 0 destinations\n"
    assert (run(sim, "/sbin/pfctl", "-k", "0.0.0.0/0", "-k", "192.0.2.10").stderr
            == "killed 1 states from 1 sources and 1 destinations\n")
    assert run(sim, "/sbin/pfctl", "-k", "label", "-k", "jailhooks:web").stderr == "killed 0 states\n"
    assert len(sim.read()["states"]) == 1
    res = run(sim, "/sbin/pfctl", "-k", "a", "-k", "b", "-k", "c")
    assert res.returncode == 1 and "can only specify -k twice" in res.stderr


@pytest.mark.parametrize("argv,message", [
    (["-a", "jailhooks/web"], "anchors apply to -f, -F, -s, and -T only"),
    (["-a", "", "-s", "rules"], "anchor name must not be empty"),
    (["-a", "_x", "-F", "all"], "anchor names beginning with '_' cannot be modified"),
    (["-s", "bogus"], "Unknown show modifier 'bogus'"),
    (["-Z"], "usage: pfctl"),
    (["-s", "rules", "extra"], "unknown command line argument: extra"),
])
def test_pfctl_refuses_bad_arguments(sim, argv, message):
    res = run(sim, "/sbin/pfctl", *argv)
    assert res.returncode != 0 and message in res.stderr


def test_running_status_and_enable(sim):
    res = run(sim, "/sbin/pfctl", "-s", "Running")
    assert (res.returncode, res.stdout) == (0, "Enabled\n")
    again = run(sim, "/sbin/pfctl", "-e")
    assert (again.returncode, again.stderr) == (1, "pfctl: pf already enabled\n")
    info = run(sim, "/sbin/pfctl", "-s", "info")
    assert info.returncode == 0 and info.stdout.startswith("Status: Enabled for 0 days 00:00:")
    with sim.state() as st:
        st["pf"]["enabled"] = False
    assert run(sim, "/sbin/pfctl", "-s", "Running").returncode == 1
    enabled = run(sim, "/sbin/pfctl", "-e")
    assert (enabled.returncode, enabled.stderr) == (0, "pf enabled\n")


def test_pf_not_loaded(sim):
    with sim.state() as st:
        st["pf"]["loaded"] = False
    assert run(sim, "/sbin/pfctl", "-s", "rules").stderr == "pfctl: /dev/pf: No such file or directory\n"


def test_commands_must_be_absolute_and_known(sim):
    assert run(sim, "pfctl", "-s", "rules").returncode == 127
    assert run(sim, "/bin/sh", "-c", "true").returncode == 127


def test_sysctl(sim):
    assert run(sim, "/sbin/sysctl", "-n", "net.fibs").stdout == "1\n"
    res = run(sim, "/sbin/sysctl", "-n", "no.such")
    assert (res.returncode, res.stderr) == (1, "sysctl: unknown oid 'no.such'\n")
    assert run(sim, "/sbin/sysctl", "net.fibs=4").stdout == "net.fibs: 1 -> 4\n"
    shrink = run(sim, "/sbin/sysctl", "net.fibs=2")  # grows only at run time
    assert shrink.returncode == 1 and "Capabilities insufficient" in shrink.stderr


def test_route_needs_the_connected_route_first(sim):
    run(sim, "/sbin/sysctl", "net.fibs=2")
    early = run(sim, "/sbin/route", "-n", "-4", "add", "default", "192.0.2.1", "-fib", "1")
    assert early.returncode == 1 and "Network is unreachable" in early.stdout
    assert run(sim, "/sbin/route", "-n", "-4", "add", "-net", "192.0.2.0/24", "-iface", "em0", "-fib", "1").returncode == 0
    ok = run(sim, "/sbin/route", "-n", "-4", "add", "default", "192.0.2.1", "-fib", "1")
    assert (ok.returncode, ok.stdout) == (0, "add net default: gateway 192.0.2.1 fib 1\n")
    dup = run(sim, "/sbin/route", "-n", "-4", "add", "default", "192.0.2.1", "-fib", "1")
    assert dup.stdout == "add net default: gateway 192.0.2.1 fib 1: route already in table\n"
    beyond = run(sim, "/sbin/route", "-n", "-4", "add", "default", "192.0.2.1", "-fib", "2")  # net.fibs is 2
    assert (beyond.returncode, beyond.stderr) == (64, "route: invalid fib number: 2\n")


def test_jail_modify_and_errors(sim):
    assert run(sim, "/usr/sbin/jail", "-c", "name=web", "path=/j", "ip4.addr=192.0.2.10", "persist").returncode == 0
    assert run(sim, "/usr/sbin/jail", "-m", "name=web", "ip4.nosaddrsel").returncode == 0
    assert sim.read()["jails"]["web"]["ip4.saddrsel"] is False
    assert "unknown parameter" in run(sim, "/usr/sbin/jail", "-m", "name=web", "bogus=1").stderr
    # messages of usr.sbin/jail/jail.c (jail_quoted_warnx), exit 1
    missing = run(sim, "/usr/sbin/jail", "-m", "name=nosuch", "ip4.nosaddrsel")
    assert (missing.returncode, missing.stderr) == (1, 'jail: "nosuch" not found\n')
    again = run(sim, "/usr/sbin/jail", "-c", "name=web", "path=/j", "persist")
    assert (again.returncode, again.stderr) == (1, 'jail: "web" already exists\n')


def test_faults_are_injected_by_argv_prefix(sim):
    sim.add_fault(["pfctl", "-a", "jailhooks/web", "-f"], rc=1, stderr="pfctl: DIOCXCOMMIT: Device busy\n", times=1)
    res = run(sim, "/sbin/pfctl", "-a", "jailhooks/web", "-f", "-", input=RULES)
    assert (res.returncode, res.stderr) == (1, "pfctl: DIOCXCOMMIT: Device busy\n")
    assert run(sim, "/sbin/pfctl", "-a", "jailhooks/web", "-f", "-", input=RULES).returncode == 0
    sim.add_fault(["jls"], timeout=True)
    with pytest.raises(CommandTimeout):
        run(sim, "/usr/sbin/jls")


def test_getopt_is_posix():
    from jailhooks.sim.getopt import GetoptError, getopt

    assert getopt(["-qa", "x/y", "-Fall", "rest", "-v"], "a:F:qv") == ([("-q", ""), ("-a", "x/y"), ("-F", "all")],
                                                                        ["rest", "-v"])
    assert getopt(["--", "-q"], "q") == ([], ["-q"])
    with pytest.raises(GetoptError, match="illegal option -- z"):
        getopt(["-z"], "q")
    with pytest.raises(GetoptError, match="requires an argument -- a"):
        getopt(["-a"], "a:")


def test_host_reads_a_missing_anchor_as_no_tables(sim):
    from jailhooks.config import COMMANDS
    from jailhooks.errors import CommandError
    from jailhooks.host import Host

    host = Host(sim, dict(COMMANDS))
    run(sim, "/sbin/pfctl", "-a", "jailhooks/web", "-f", "-", input="table <jail_web> { 192.0.2.10 }\n"
        "pass out quick from <jail_web> to any\n")
    assert host.pf_tables("jailhooks/web") == ["jail_web"]
    assert host.pf_tables("jailhooks/nosuch") == []
    sim.add_fault(["pfctl", "-a", "jailhooks/other"], rc=1, stderr="pfctl: Operation not permitted.\n")
    with pytest.raises(CommandError, match="Operation not permitted"):
        host.pf_tables("jailhooks/other")


from hypothesis import given, settings, strategies as st  # noqa: E402

_PATHS = st.lists(st.sampled_from(["a", "b", "jailhooks"]), min_size=1, max_size=3).map("/".join)


@settings(max_examples=60, deadline=None)
@given(st.lists(_PATHS, max_size=4, unique=True), _PATHS)
def test_anchor_lookup_agrees_with_the_whole_tree(tmp_path_factory, loaded, asked):
    """Asked about one anchor (`-a ASKED -s Tables`), pfctl says what the whole
    tree (`-s Anchors`) says: it exists exactly when the tree lists it."""
    sim = SimulatedRunner(str(tmp_path_factory.mktemp("sim")))
    for name in loaded:
        assert run(sim, "/sbin/pfctl", "-a", name, "-f", "-", input="pass out quick all\n").returncode == 0
    tree = [line.strip() for line in run(sim, "/sbin/pfctl", "-s", "Anchors").stdout.splitlines()]
    one = run(sim, "/sbin/pfctl", "-a", asked, "-s", "Tables")
    assert (one.returncode == 0) == (asked in tree), (one.stderr, tree)
    assert set(loaded) <= set(tree)
