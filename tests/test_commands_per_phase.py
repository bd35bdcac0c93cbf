"""How many FreeBSD commands each phase runs, pinned so that none creeps
back: on a host with 300 jails these fork+execs, not Python, decide how long
a boot or a mass restart takes.  (benchmarks/run.py prints the same table
with what each costs.)"""
from __future__ import annotations

import pytest

# a typical jail: one address, a lease, an exclusive FIB with two routes, NAT, five rules
TYPICAL = """
[fib]
mode = "exclusive"
connected = [{{ net = "192.0.2.0/24", interface = "em0" }}]
gateway = "192.0.2.1"

[saddr]
nat_interface = "em0"

[pf]
allow = [
  {{ proto = ["tcp", "udp"], to = "192.0.2.53", port = 53 }},
  {{ proto = "tcp", port = [80, 443] }},
  {{ proto = "tcp", to = "192.0.2.30", port = 5432 }},
  {{ proto = "tcp", to = "192.0.2.20", port = 25 }},
  {{ proto = "udp", to = "192.0.2.123", port = 123 }},
]

[jail.web]
path = "{root}"
ip4 = "10.0.0.5"
[jail.web.saddr]
nat = "203.0.113.5"
"""

JLS_ONE = "jls --libxo json -j web"
JLS_ALL = "jls --libxo json jid"
# what pf holds, read back to prove the jail's policy is enforced (pf/prove.py)
PROOF = ["pfctl -s Running", "pfctl -a * -s rules", "pfctl -a * -s nat", "pfctl -v -s Interfaces"]

EXPECTED = {
    # jail(8)'s order: exec.prestart, the jail is made, exec.poststart ...
    "create": [JLS_ONE, JLS_ALL, "sysctl -n net.fibs", "route -q -n flush -fib 1"],
    # the jail does not run yet: one listing of the running jails answers "does it run?" and the
    # address check.  This is the full path (a start whose inputs changed); test_replay.py pins a replay.
    "prestart": [JLS_ALL, "sysctl -n net.fibs", "route -q -n -4 add -net 192.0.2.0/24 -iface em0 -fib 1",
                 "route -q -n -4 add default 192.0.2.1 -fib 1", "pfctl -a jailhooks/web -f -", *PROOF],
    "poststart": [JLS_ONE, "pfctl -a jailhooks/web -s rules", "pfctl -a jailhooks/web -s nat",
                  "pfctl -a jailhooks/web -s Tables", *PROOF, "jail -m name=web ip4.nosaddrsel"],
    "prestop": [],  # no built-in acts there: not even jls
    "poststop": [JLS_ONE, "pfctl -q -a jailhooks/web -F all", "pfctl -q -k label -k jailhooks:web",
                 "pfctl -q -k 10.0.0.5", "pfctl -q -k 0.0.0.0/0 -k 10.0.0.5"],
    "destroy": [JLS_ONE, "pfctl -q -a jailhooks/web -F all", "pfctl -q -k label -k jailhooks:web",
                "pfctl -q -k 10.0.0.5", "pfctl -q -k 0.0.0.0/0 -k 10.0.0.5", "route -q -n flush -fib 1",
                "route -q -n -4 delete -net 192.0.2.0/24 -fib 1"],
}

# a jail that ran before jailhooks, adopted with one `run start`: one jls listing
# (facts, the address check, the uids plugin's claims); prestart's load proves the
# anchor, and jls already gave the jid, so poststart asks nothing again
ADOPTED = [JLS_ALL, "sysctl -n net.fibs", "route -q -n flush -fib 1",
           "route -q -n -4 add -net 192.0.2.0/24 -iface em0 -fib 1", "route -q -n -4 add default 192.0.2.1 -fib 1",
           "pfctl -a jailhooks/web -f -", *PROOF, "jail -m name=web ip4.nosaddrsel"]


def _commands(env) -> list[str]:
    return [" ".join(c) for c in env.sim.commands()]


def _matches(seen: list[str], expected: list[str]) -> bool:
    return len(seen) == len(expected) and all(s.startswith(e) for s, e in zip(seen, expected))


@pytest.fixture
def typical(env, cli):
    env.write_config(TYPICAL.format(root=env.jail_root("web")))
    env.sim.run(["/sbin/sysctl", "net.fibs=4"], None, 5, True)
    return env


def test_commands_per_phase_of_a_typical_jail(typical, cli):
    seen = {}
    for phase in ("create", "prestart", "poststart", "prestop", "poststop", "destroy"):
        if phase == "poststart":
            typical.create_jail("web", ip4="10.0.0.5")
        if phase == "poststop":
            typical.remove_jail("web")
        typical.sim.clear_log()
        assert cli("run", phase, "web").code == 0, phase
        seen[phase] = _commands(typical)
    for phase, expected in EXPECTED.items():
        assert _matches(seen[phase], expected), (phase, seen[phase])


def test_commands_of_adopting_a_running_jail(typical, cli):
    typical.create_jail("web", ip4="10.0.0.5")
    typical.sim.clear_log()
    assert cli("run", "start", "web").code == 0
    seen = _commands(typical)
    assert _matches(seen, ADOPTED), seen
    assert sum(c.startswith("pfctl") for c in seen) == 1 + len(PROOF)  # one load, and the proof's reads
