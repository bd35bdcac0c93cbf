"""The simulator's scope: it models every command the host layer sends, and
says so for anything else.  Each public method of the host layer is driven
here against it, and so is a whole lifecycle through the CLI (the plugins'
own ``host.run`` commands included); none may meet "not modelled".  Beyond
that, an option or command the real tool has but the simulation does not
model exits 70 saying so, and one the real tool does not have gets the
tool's own usage message, as on FreeBSD."""
from __future__ import annotations

import inspect
from pathlib import Path

import pytest

from jailhooks.config import COMMANDS
from jailhooks.host import Host
from jailhooks.sim import SimulatedRunner
from jailhooks.sim.getopt import NOT_MODELLED

from .test_commands_per_phase import TYPICAL

RULES = "table <jail_web> { 192.0.2.10 }\npass out quick from <jail_web> to any keep state label \"jailhooks:web\"\n"

HOST_CALLS = {
    "jail": lambda host: (host.jail("web"), host.jail("nosuch")),
    "jails": lambda host: host.jails(),
    "saddrsel": lambda host: host.saddrsel(),
    "jail_set": lambda host: host.jail_set("web", "ip4.nosaddrsel"),
    "pf_load": lambda host: host.pf_load("jailhooks/web", RULES),
    "pf_rules": lambda host: (host.pf_rules("jailhooks/web"), host.pf_rules("jailhooks/web", "nat"),
                              host.pf_rules("")),
    "pf_tables": lambda host: (host.pf_tables("jailhooks/web"), host.pf_tables("jailhooks/nosuch")),
    "pf_anchors": lambda host: (host.pf_anchors("jailhooks"), host.pf_anchors("nosuch")),
    "pf_running": lambda host: host.pf_running(),
    "pf_show_all": lambda host: (host.pf_show_all("rules"), host.pf_show_all("nat")),
    "pf_skipped": lambda host: host.pf_skipped(),
    "pf_table": lambda host: (host.pf_table("jailhooks/web", "jail_web"), host.pf_table("jailhooks/web", "nosuch")),
    "pf_kill_label": lambda host: host.pf_kill_label("jailhooks:web"),
    "pf_kill_address": lambda host: (host.pf_kill_address("192.0.2.10"), host.pf_kill_address("2001:db8::10")),
    "pf_counters": lambda host: host.pf_counters("jailhooks/web"),
    "pf_flush": lambda host: host.pf_flush("jailhooks/web"),
    "sysctl": lambda host: (host.sysctl("net.fibs"), host.sysctl("no.such.oid")),
    "route": lambda host: (host.run("sysctl", "net.fibs=2"), host.route("add", "-4", ["-net", "192.0.2.0/24", "-iface", "em0"], 1),
                           host.route("add", "-4", ["default", "192.0.2.1"], 1),
                           host.route("change", "-4", ["default", "192.0.2.254"], 1)),
    # the second route_set finds the route there ("File exists") and changes it
    "route_set": lambda host: (host.run("sysctl", "net.fibs=2"),
                               host.route_set("-4", ["default", "192.0.2.1"], 1, ["default"]),
                               host.route_set("-4", ["default", "192.0.2.254"], 1, ["default"])),
    "route_exists": lambda host: (host.route_exists("-4", "default", 1), host.route_exists("-6", "default", 1)),
    "route_delete_if_there": lambda host: (host.route_delete_if_there("-4", ["-net", "192.0.2.0/24"], 1),
                                           host.route_delete_if_there("-4", ["-net", "198.51.100.0/24"], 1)),
    "route_flush": lambda host: host.route_flush(1),
    "ipfw_script": lambda host: host.ipfw_script(["delete 10000-10049", "table jh_web_u0 destroy",
                                                  "table jh_web_u0 create type number",
                                                  "table jh_web_u0 add 100000 0 100001 0",
                                                  "add 10000 check-state",
                                                  "add 10001 deny log logdst syslog tcp from any to any 25 out jail 1 lookup uid "
                                                  "jh_web_u0",
                                                  "add 10002 allow tcp from 192.0.2.10 to any 443 out keep-state",
                                                  "add 10003 deny log ip from any to any out jail web"]),
    "ipfw_list": lambda host: host.ipfw_list(),
    "ipfw_counters": lambda host: host.ipfw_counters(),
    "ipfw_table": lambda host: (host.ipfw_table("jh_web_u0"), host.ipfw_table("nosuch")),
    "ipfw_enabled": lambda host: host.ipfw_enabled(),
    "ipfw_nat": lambda host: (host.ipfw_script(["nat 10000 config ip 192.0.2.1 redirect_port tcp 10.0.0.5:80 8080",
                                                "add 10001 nat 10000 ip from any to 192.0.2.1 in recv em0"]),
                              host.ipfw_nat()),
    "pflog_follow": lambda host: _header(host),
    "log_follow": lambda host: host.log_follow(str(Path(host.runner.dir) / "security")).close(),
}


def _header(host):
    """Start following pflog0, read the pcap header tcpdump writes at once, stop."""
    with host.pflog_follow("pflog0") as followed:
        head = followed.read(24)
    assert head[20:24] == (117).to_bytes(4, "little")  # LINKTYPE_PFLOG
    return head


class Recording(SimulatedRunner):
    """The simulated host, keeping every answer it gave."""

    def __init__(self, state_dir: str) -> None:
        super().__init__(state_dir)
        self.answers: list = []

    def run(self, argv, input, timeout, mutating):
        res = super().run(argv, input, timeout, mutating)
        self.answers.append(res)
        return res

    def stream(self, argv):
        stream, answers = super().stream(argv), self.answers
        close = stream.close

        def closed():
            res = close()
            answers.append(res)
            return res

        stream.close = closed
        return stream


def unmodelled(answers) -> list:
    return [(" ".join(r.argv), r.stderr) for r in answers
            if r.returncode in (NOT_MODELLED, 127) or "not modelled" in r.stderr]


def test_every_method_of_the_host_layer_is_driven_here():
    methods = {name for name, _ in inspect.getmembers(Host, inspect.isfunction) if not name.startswith("_")}
    assert methods - {"run"} == set(HOST_CALLS)  # run: the plugins' own commands, next test


def test_the_simulator_models_every_command_the_host_layer_sends(tmp_path):
    sim = Recording(str(tmp_path))
    assert sim.run(["/usr/sbin/jail", "-c", "name=web", "path=/jails/web", "ip4.addr=192.0.2.10",
                    "ip6.addr=2001:db8::10", "persist"], None, 5, True).returncode == 0
    host = Host(sim, dict(COMMANDS))
    for call in HOST_CALLS.values():
        call(host)
    assert len(sim.answers) > len(HOST_CALLS)
    assert unmodelled(sim.answers) == []


def test_a_whole_lifecycle_through_the_cli_meets_nothing_unmodelled(env, cli, monkeypatch):
    answers: list = []
    real = SimulatedRunner.run

    def recording(self, argv, input, timeout, mutating):
        res = real(self, argv, input, timeout, mutating)
        answers.append(res)
        return res

    monkeypatch.setattr(SimulatedRunner, "run", recording)
    env.write_config(TYPICAL.format(root=env.jail_root("web")))  # a lease, an exclusive FIB with routes, NAT
    env.sim.run(["/sbin/sysctl", "net.fibs=2"], None, 5, True)
    assert cli("run", "create", "web").code == 0
    assert cli("run", "prestart", "web").code == 0
    env.create_jail("web", ip4="10.0.0.5")
    for args in (["run", "poststart", "web"], ["sync"], ["status"], ["check", "web"], ["render", "web"],
                 ["run", "stop", "web"]):
        assert cli(*args).code in (0, 1), args  # check may find problems; it must not meet the unmodelled
    env.remove_jail("web")
    assert cli("run", "destroy", "web").code == 0
    tools = {r.argv[0].rsplit("/", 1)[1] for r in answers}
    assert tools == {"jls", "jail", "sysctl", "route", "pfctl"}
    assert unmodelled(answers) == []


@pytest.mark.parametrize("argv", [
    ["/sbin/pfctl", "-t", "jail_web", "-T", "add", "192.0.2.1"],
    ["/sbin/pfctl", "-K", "192.0.2.10"],
    ["/sbin/pfctl", "-s", "rules", "-v", "-z"],
    ["/sbin/pfctl", "-a", "jailhooks/*", "-s", "rules"],
    ["/usr/sbin/jls", "-d"],
    ["/usr/sbin/jls", "-s"],
    ["/usr/sbin/jail", "-f", "/etc/jail.conf", "-c", "web"],
    ["/usr/sbin/jail", "-l", "-c", "name=x"],
    ["/sbin/sysctl", "-a"],
    ["/sbin/sysctl", "-d", "net.fibs"],
    ["/sbin/route", "-j", "web", "-n", "get", "default"],
    ["/sbin/route", "-n", "monitor"],
    ["/sbin/route", "-v", "-n", "get", "default"],
])
def test_what_the_real_tool_does_but_the_simulation_does_not_exits_70(tmp_path, argv):
    res = SimulatedRunner(str(tmp_path)).run(argv, None, 5, True)
    assert (res.returncode, res.stdout) == (NOT_MODELLED, "")
    assert res.stderr.endswith("is not modelled by the simulated host\n") and res.stderr.count("\n") == 1


@pytest.mark.parametrize("argv,code,usage", [
    (["/sbin/pfctl", "-Z"], 1, "usage: pfctl [-AdeghMmNnOPqRSrvz]"),
    (["/sbin/pfctl", "-h"], 1, "usage: pfctl [-AdeghMmNnOPqRSrvz]"),
    (["/usr/sbin/jls", "-x"], 1, "usage: jls [-dhNnqv]"),
    (["/usr/sbin/jail", "-Z"], 1, "usage: jail [-dhilqv]"),
    (["/sbin/sysctl", "-Z"], 1, "usage: sysctl [-bdehiNnoqTtWx]"),
    (["/sbin/route", "-Z", "get", "default"], 64, "usage: route [-j jail] [-46dnqtv]"),
    (["/sbin/route", "-j"], 64, "usage: route [-j jail] [-46dnqtv]"),
])
def test_an_option_the_real_tool_lacks_gets_its_usage(tmp_path, argv, code, usage):
    res = SimulatedRunner(str(tmp_path)).run(argv, None, 5, True)
    assert res.returncode == code
    assert usage in res.stderr and "not modelled" not in res.stderr


@pytest.mark.parametrize("argv,code,says", [
    (["/usr/sbin/tcpdump", "-i", "pflog0"], NOT_MODELLED, "does not write pcap to stdout (-U -w -) is not modelled"),
    (["/usr/sbin/tcpdump", "-U", "-w", "-", "-i", "pflog0", "port", "25"], NOT_MODELLED, "a filter expression"),
    (["/usr/sbin/tcpdump", "-U", "-w", "-", "-i", "em0"], NOT_MODELLED, "a capture on em0 is not modelled"),
    (["/usr/sbin/tcpdump", "-U", "-w", "-", "-c", "5", "-i", "pflog0"], NOT_MODELLED, "-c is not modelled"),
    (["/usr/sbin/tcpdump", "-U", "-w", "-", "-i", "pflog7"], 1, "tcpdump: pflog7: No such device exists\n"),
    (["/usr/sbin/tcpdump", "-k"], 1, "tcpdump: illegal option -- k\nUsage: tcpdump [-AbdDefhHIJKlLnNOpqStuUvxX#]"),
])
def test_the_simulated_tcpdump_says_what_it_does_not_capture(tmp_path, argv, code, says):
    stream = SimulatedRunner(str(tmp_path)).stream(argv)
    assert stream.read(24) == b""  # it ended at once
    res = stream.close()
    assert res.returncode == code and says in res.stderr


@pytest.mark.parametrize("argv,code,says", [
    (["/usr/bin/tail", "-f", "-n", "0", "SIMDIR/security"], NOT_MODELLED, "-f is not modelled"),
    (["/usr/bin/tail", "-F", "-n", "10", "SIMDIR/security"], NOT_MODELLED, "anything but tail -F -n 0 FILE"),
    (["/usr/bin/tail", "-F", "-n", "0", "/etc/passwd"], NOT_MODELLED, "a file outside the simulated host"),
    (["/usr/bin/tail", "-Z"], 1, "tail: illegal option -- Z\nusage: tail [-F | -f | -r] [-q]"),
])
def test_the_simulated_tail_says_what_it_does_not_follow(tmp_path, argv, code, says):
    sim = SimulatedRunner(str(tmp_path))
    stream = sim.stream([a.replace("SIMDIR", sim.dir) for a in argv])
    assert stream.readline() == b""  # it ended at once
    res = stream.close()
    assert res.returncode == code and says in res.stderr
