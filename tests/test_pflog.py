"""What the jails' rules logged: pflog records (FreeBSD 15.1's struct
pfloghdr, sys/net/if_pflog.h, quoted in jailhooks/pf/pflog.py) written by the
simulated host's pflogd for `sim send`, read back by `jailhooks log`, and read
by the real tcpdump, which must see the same rule, action, interface and
addresses."""
from __future__ import annotations

import bz2
import json
import os
import shutil
import struct
import signal
import subprocess

import pytest

from jailhooks.logfiles import open_log
from jailhooks.pf import pflog

WEB = ('[jail.web]\npath = "{root}"\nip4 = "192.0.2.10"\n[jail.web.pf]\n'
       'allow = [{{ proto = "tcp", port = 443 }}]\nusers.block = [{{ proto = "tcp", port = 25, log = true }}]\n')


def header(**fields) -> bytes:
    """A pfloghdr laid out by hand from the 15.1 struct (offsets in the comments)."""
    h = bytearray(72)
    h[0] = 69                                            # length: PFLOG_REAL_HDRLEN, offsetof(pad2)
    h[1] = fields.get("af", 2)                           # sa_family_t (u_int8_t): AF_INET
    h[2] = fields.get("action", 1)                       # PF_DROP
    h[4:20] = b"em0".ljust(16, b"\0")                    # ifname[IFNAMSIZ]
    h[20:36] = fields.get("ruleset", b"web").ljust(16, b"\0")  # ruleset[PFLOG_RULESET_NAME_SIZE]
    h[36:44] = struct.pack("!II", 3, 7)                  # rulenr, subrulenr: htonl
    h[44:48] = struct.pack("<I", fields.get("uid", 100005))   # uid: host order
    h[60] = 2                                            # dir: PF_OUT
    h[64:68] = struct.pack("!I", fields.get("rid", 100000))   # ridentifier: htonl
    ip = struct.pack("!BBHHHBBH4s4s", 0x45, 0, 40, 1, 0, 64, 6, 0, bytes([192, 0, 2, 10]), bytes([198, 51, 100, 1]))
    tcp = struct.pack("!HHIIBBHHH", 40001, 25, 1, 0, 0x50, 2, 65535, 0, 0)
    return bytes(h) + ip + tcp


def test_a_record_laid_out_by_hand_decodes():
    r = pflog.decode(header())
    assert (r.action, r.ifname, r.ruleset, r.rulenr, r.subrulenr, r.uid, r.dir, r.ridentifier) == \
        ("block", "em0", "web", 3, 7, 100005, "out", 100000)
    assert (r.proto, r.src, r.dst, r.sport, r.dport) == ("tcp", "192.0.2.10", "198.51.100.1", 40001, 25)


def test_a_truncated_ruleset_name_and_a_record_without_uid():
    # strlcpy into 16 bytes: 15 characters and the NUL; a rule without log (user) gives uid -1
    r = pflog.decode(header(ruleset=b"a-very-long-jai", uid=0xFFFFFFFF, rid=200000))
    assert r.ruleset == "a-very-long-jai" and r.uid == pflog.NO_UID and r.ridentifier == 200000
    assert pflog.decode(header()[:40]) is None  # too short to be a record


def test_a_rotated_file_is_read_like_the_live_one(tmp_path):
    data = pflog.file_header() + pflog.encode(1.5, 1, "em0", "web", 3, 7, None, 2, 100000, "tcp", "192.0.2.10",
                                               "198.51.100.1", 40001, 25)
    (tmp_path / "pflog.0.bz2").write_bytes(bz2.compress(data))
    with open_log(str(tmp_path / "pflog.0.bz2")) as fh:
        (record,) = list(pflog.read(fh))
    assert record.time == 1.5 and record.uid == pflog.NO_UID


@pytest.fixture
def web(env, cli):
    env.write_config(WEB.format(root=env.jail_root("web")))
    (env.jail_root("web") / "etc" / "passwd").write_text("root:*:0:0::/root:/bin/sh\nalice:*:100005:100005::/home/alice:/bin/sh\n")
    assert cli("run", "prestart", "web").code == 0
    env.create_jail("web", ip4="192.0.2.10")
    assert cli("run", "poststart", "web").code == 0
    return env


def test_sim_send_logs_what_a_logging_rule_decides_and_log_tells_who(web, cli):
    sent = cli("sim", "send", "web", "tcp", "198.51.100.1:25", "--uid", "100005")
    assert sent.code == 0, sent.err
    assert sent.out.startswith("block: tcp 192.0.2.10 -> 198.51.100.1:25") and "logged to pflog" in sent.out
    passed = cli("sim", "send", "web", "tcp", "198.51.100.1:443")
    assert passed.out.startswith("pass:") and "logged" not in passed.out  # a pass that does not log
    doc = json.loads(cli("log", "--json").out)["jailhooks-log"]
    assert len(doc) == 1
    (r,) = doc
    assert (r["jail"], r["user"], r["uid"], r["verdict"], r["direction"], r["proto"], r["dst"], r["port"]) == \
        ("web", "alice", 100005, "block", "out", "tcp", "198.51.100.1", 25)
    assert r["rule"].startswith("block drop out log (user) quick proto tcp from <jail_web> to any port = smtp")
    assert r["section"] == "1. blocks for the jail's users"
    text = cli("log", "web").out
    assert " web alice block out on em0 tcp 192.0.2.10 -> 198.51.100.1:25; rule: block drop out log (user)" in text
    assert cli("log", "mail").out == ""


def test_tcpdump_reads_the_simulated_pflog_as_jailhooks_does(web, cli):
    if shutil.which("tcpdump") is None:  # .ci/run installs it; a CI run without it must not pass silently
        (pytest.fail if os.environ.get("CI") else pytest.skip)("tcpdump is not installed (Debian package tcpdump)")
    assert cli("sim", "send", "web", "tcp", "198.51.100.1:25", "--uid", "100005").code == 0
    path = web.state / "simhost" / "pflog"
    out = subprocess.run(["tcpdump", "-n", "-e", "-r", str(path)], capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stderr
    (line,) = out.stdout.splitlines()
    r = json.loads(cli("log", "--json").out)["jailhooks-log"][0]
    # tcpdump's print-pflog.c: rule RULENR.RULESET.SUBRULENR/0(match): ACTION DIR on IFNAME: SRC.PORT > DST.PORT
    with open(path, "rb") as fh:
        (record,) = list(pflog.read(fh))
    assert f"rule {record.rulenr}.web.{record.subrulenr}/0(match): {r['verdict']} {r['direction']} on " \
           f"{r['interface']}: {r['src']}.40000 > {r['dst']}.{r['port']}:" in line



def test_status_counts_what_the_jails_rules_passed_and_blocked(web, cli):
    for dest, uid in (("198.51.100.1:25", "100005"), ("198.51.100.1:25", "0"), ("198.51.100.1:443", "0")):
        assert cli("sim", "send", "web", "tcp", dest, "--uid", uid).code == 0
    (record,) = [r for r in json.loads(cli("status", "--json").out)["jailhooks-status"]["jail"]]
    pf = record["plugins"]["pf"]
    assert pf["passed"] == {"packets": 1, "bytes": 40} and pf["blocked"] == {"packets": 2, "bytes": 80}
    table = cli("status").out.splitlines()  # the packets, in the table's last two columns, and with -H
    assert table[0].split()[-2:] == ["PASSED", "BLOCKED"] and table[1].split()[-2:] == ["1", "2"]
    assert cli("status", "-H").out.split("\t")[-2:] == ["1", "2\n"]
    verbose = cli("-v", "status", "web").out  # per rule, under the section headings render prints
    assert "web: packets and bytes of each rule since it was loaded\n" in verbose
    assert ("# 1. blocks for the jail's users\n         1           40  block drop out log (user) quick proto tcp "
            "from <jail_web> to any port = smtp") in verbose
    assert "# 4. passes for the jail\n         1           40  pass out quick proto tcp" in verbose
    # pfctl -v -s rules, as pfctl_print_rule_counters() prints it
    listing = web.sim.run(["/sbin/pfctl", "-a", "jailhooks/web", "-v", "-s", "rules"], None, 5, False).stdout
    assert "  [ Evaluations: 1         Packets: 1         Bytes: 40          States: 1     ]\n" in listing
    # a reload starts the counters again (pf_ioctl.c keeps them only under `set keepcounters`)
    assert cli("sync").code == 0
    pf = json.loads(cli("status", "--json").out)["jailhooks-status"]["jail"][0]["plugins"]["pf"]
    assert pf["passed"]["packets"] == pf["blocked"]["packets"] == 0


LEARN = ('[jail.web]\npath = "{root}"\nip4 = "192.0.2.10"\n[jail.web.pf]\nmode = "{mode}"\n'
         'allow = [{{ proto = "tcp", port = 443 }}{extra}]\nblock = [{{ proto = "tcp", port = 23 }}]\n')


def test_learn_then_suggest_then_lock_down(env, cli):
    """mode = "learn": the default block passes and logs (an explicit block
    still blocks); suggest turns what was logged into an allow list; with it
    applied and the jail restarted, exactly the learned flows pass."""
    try:
        import tomllib
    except ModuleNotFoundError:  # Python < 3.11
        import tomli as tomllib
    from jailhooks.pf.prove import live
    from jailhooks.app import load_app
    from jailhooks.probes import Packet

    root = env.jail_root("web")
    (root / "etc" / "passwd").write_text("root:*:0:0::/root:/bin/sh\nwww:*:80:80::/nonexistent:/bin/sh\n")
    env.write_config(LEARN.format(root=root, mode="learn", extra=""))
    assert cli("run", "prestart", "web").code == 0
    env.create_jail("web", ip4="192.0.2.10")
    assert cli("run", "poststart", "web").code == 0
    assert "warning managers" not in cli("check").out
    assert "jail web is in learn mode" in cli("check").out
    learned = [("tcp", "198.51.100.1:8443", "80"), ("udp", "192.0.2.53:53", "0"), ("tcp", "198.51.100.1:8443", "0")]
    for proto, dest, uid in learned:
        sent = cli("sim", "send", "web", proto, dest, "--uid", uid)
        assert sent.out.startswith("pass:") and "logged to pflog" in sent.out, sent.out
    assert cli("sim", "send", "web", "tcp", "198.51.100.1:23").out.startswith("block:")  # explicit: still blocked
    assert "logged" not in cli("sim", "send", "web", "tcp", "198.51.100.1:443").out  # already allowed: not learned
    out = cli("suggest", "web").out
    assert out.startswith("# jailhooks suggest web: 2 flow(s) from 3 packet(s) logged in learn mode")
    assert '{ proto = "tcp", to = "198.51.100.1", port = 8443 },  # 2 packet(s); users: root, www' in out
    suggested = tomllib.loads(out)["allow"]
    assert suggested == [{"proto": "tcp", "to": "198.51.100.1", "port": 8443},
                         {"proto": "udp", "to": "192.0.2.53", "port": 53}]
    # lock down: the suggestion applied, enforce, restart
    extra = "".join(f', {{ proto = "{a["proto"]}", to = "{a["to"]}", port = {a["port"]} }}' for a in suggested)
    env.write_config(LEARN.format(root=root, mode="enforce", extra=extra))
    env.remove_jail("web")
    assert cli("run", "poststop", "web").code == 0
    assert cli("run", "prestart", "web").code == 0
    env.create_jail("web", ip4="192.0.2.10")
    assert cli("run", "poststart", "web").code == 0
    assert "learn mode" not in cli("check").out
    ruleset = live(load_app(str(env.config)).host)

    def verdict(proto, dst, port):
        return ruleset.test(Packet("em0", "out", proto, "192.0.2.10", dst, dport=port, uid=80)).action

    assert [verdict("tcp", "198.51.100.1", 8443), verdict("udp", "192.0.2.53", 53)] == ["pass", "pass"]
    assert [verdict("tcp", "198.51.100.2", 8443), verdict("tcp", "198.51.100.1", 8080),
            verdict("udp", "192.0.2.54", 53), verdict("tcp", "198.51.100.1", 23)] == ["block"] * 4


def test_a_record_at_the_end_of_pcaps_time_range_is_shown(web, cli):
    path = web.state / "simhost" / "pflog"
    path.write_bytes(pflog.file_header() + pflog.encode(0, 1, "em0", "web", 3, 7, 0, 2, 100000, "tcp",
                                                        "192.0.2.10", "198.51.100.1", 40001, 25))
    data = bytearray(path.read_bytes())
    data[24:28] = struct.pack("<I", 0xFFFFFFFF)  # ts_sec of the record: year 2106
    path.write_bytes(bytes(data))
    res = cli("log", "--json")
    assert res.code == 0, res.err
    assert json.loads(res.out)["jailhooks-log"][0]["jail"] == "web"


def test_log_and_suggest_refuse_a_name_that_is_no_jail_name(env, cli):
    env.write_config('[jail.web]\nip4 = "192.0.2.10"\n')
    for args in (("log", "bad/name"), ("suggest", "bad/name")):
        res = cli(*args)
        assert res.code == 65 and res.err.startswith(f"jailhooks: {args[0]}: ") and res.err.count("\n") == 1


def test_log_follow_shows_each_packet_as_pf_logs_it(web, cli):
    assert cli("sim", "send", "web", "tcp", "198.51.100.1:25", "--uid", "100005").code == 0  # before: not shown
    follow = web.popen("log", "--follow", "--count", "2", "web")
    try:
        # the capture runs (tcpdump -U wrote its header) before this line: what is sent now is seen
        assert follow.stderr.readline() == "jailhooks: log: following pflog0 (Ctrl-C to stop)\n"
        assert cli("sim", "send", "web", "tcp", "198.51.100.2:25", "--uid", "100005").code == 0
        first = follow.stdout.readline()  # written out at once, while it goes on
        assert " web alice block out on em0 tcp 192.0.2.10 -> 198.51.100.2:25; rule: block drop out log (user)" \
            in first and first.endswith("(1. blocks for the jail's users)\n")
        assert cli("sim", "send", "web", "udp", "198.51.100.3:53", "--uid", "100005").code == 0
        second = follow.stdout.readline()
        assert " web alice block out on em0 udp 192.0.2.10 -> 198.51.100.3:53" in second
        assert follow.wait(timeout=60) == 0  # --count 2
        assert follow.stdout.read() == ""
    finally:
        follow.kill()
        follow.wait()
    commands = [c for c in web.sim.commands() if c[0] == "tcpdump"]
    assert commands == [["tcpdump", "-U", "-w", "-", "-i", "pflog0"]]


def test_log_follow_since_shows_the_file_first_and_json_one_object_a_line(web, cli):
    assert cli("sim", "send", "web", "tcp", "198.51.100.1:25", "--uid", "100005").code == 0
    follow = web.popen("log", "--follow", "--since", "1h", "--json", "--count", "2")
    try:
        assert follow.stderr.readline().startswith("jailhooks: log: following pflog0")
        earlier = json.loads(follow.stdout.readline())  # from the file, before the live ones
        assert (earlier["jail"], earlier["dst"], earlier["port"], earlier["user"]) == \
            ("web", "198.51.100.1", 25, "alice")
        assert cli("sim", "send", "web", "tcp", "198.51.100.9:25", "--uid", "100005").code == 0
        live = json.loads(follow.stdout.readline())
        assert (live["dst"], live["verdict"], live["section"]) == \
            ("198.51.100.9", "block", "1. blocks for the jail's users")
        assert follow.wait(timeout=60) == 0
    finally:
        follow.kill()
        follow.wait()


@pytest.mark.parametrize("signal_", [signal.SIGINT, signal.SIGTERM])
def test_log_follow_ends_quietly_on_a_signal(web, signal_):
    follow = web.popen("log", "--follow")
    try:
        assert follow.stderr.readline().startswith("jailhooks: log: following pflog0")
        follow.send_signal(signal_)
        assert follow.wait(timeout=60) == 0
        assert follow.stdout.read() == "" and follow.stderr.read() == ""
    finally:
        follow.kill()
        follow.wait()


def test_log_follow_fails_with_tcpdumps_own_error(env, cli):
    env.write_config(WEB.format(root=env.jail_root("web")) + '[log]\ninterface = "pflog7"\n')
    res = cli("log", "--follow")
    assert res.code == 1 and res.err.strip().endswith("tcpdump -U -w - -i pflog7: tcpdump: pflog7: No such device "
                                                        "exists"), res.err
    env.write_config(WEB.format(root=env.jail_root("web")) + '[log]\ninterface = "-i"\n')
    res = cli("log", "--follow")
    assert res.code == 78 and "jailhooks.toml: log.interface: not an interface name" in res.err and res.err.count("\n") == 1


def test_the_real_runner_streams_a_child_and_stops_it(tmp_path):
    """The runner FreeBSD uses, on programs every machine has: the child's
    output as it comes, a child stopped when closed, and one that failed
    raising its own message when read to its end."""
    from jailhooks.errors import CommandError
    from jailhooks.host import Host, SubprocessRunner

    runner = SubprocessRunner()
    stream = runner.stream(["/usr/bin/yes", "pflog"])
    assert stream.read(12) == b"pflog\npflog\n"
    assert stream.close().returncode == -signal.SIGTERM  # still running: stopped
    assert runner.stream([str(tmp_path / "nosuch")]).close().returncode == 127
    script = tmp_path / "tcpdump"
    script.write_text("#!/bin/sh\necho \"tcpdump: $5: No such device exists\" >&2\nexit 1\n")
    script.chmod(0o755)
    followed = Host(runner, {"tcpdump": str(script)}).pflog_follow("pflog7")
    with pytest.raises(CommandError, match="-i pflog7: tcpdump: pflog7: No such device exists$"):
        followed.read(24)


def test_following_looks_a_rule_that_is_no_jails_up_once(web):
    """A record of the admin's own logging rule (ridentifier 0) is shown as
    no jail's; following does not read jls and the registry at each one."""
    from jailhooks.app import load_app
    from jailhooks.plugins.pf import Attribution

    app = load_app(str(web.config))
    attribute = Attribution(app.settings, app.host, app.registry, live=True)
    web.sim.clear_log()
    record = pflog.decode(header(rid=0))
    record.time = 1.0
    for _ in range(3):
        assert attribute(record)["jail"] is None
    assert [c[0] for c in web.sim.commands()] == ["jls"]  # one look, for the first
    assert attribute(pflog.decode(header(rid=100000)))["jail"] == "web"


HOSTILE = {"time": "2026-12-03T10:00:00+00:00", "jail": "web", "uid": 5, "user": "eve\nallow = [\x1b[2J",
           "verdict": "pass", "direction": "out", "proto": "tcp", "src": "192.0.2.10\x1b[31m", "dst": "198.51.100.1",
           "port": "443, inject = true", "interface": "em0", "rule": None, "ruleset": "web",
           "section": "5. learn\nallow = []"}


def test_a_firewall_plugins_records_reach_the_terminal_and_the_suggestion_escaped(env, cli, monkeypatch):
    """Every field of a log record is the firewall plugin's: a line break or
    an escape sequence in one never reaches the terminal, and suggest writes
    no TOML from a port that is not a port number."""
    from jailhooks.pluginmanager import Plugins

    first, record = Plugins.first, dict(HOSTILE)
    monkeypatch.setattr(Plugins, "first", lambda self, hook, **kw: [dict(record)]
                        if hook == "jailhooks_firewall_log" else first(self, hook, **kw))
    env.write_config(WEB.format(root=env.jail_root("web")))
    res = cli("log")
    assert res.code == 0, res.err
    assert res.out.count("\n") == 1 and "\x1b" not in res.out and "eve\\nallow = [\\x1b[2J" in res.out
    res = cli("suggest", "web")
    assert res.code == 65 and res.out == "" and "as a port, not a port number" in res.err
    record["port"] = 443
    out = cli("suggest", "web").out  # the user goes into a comment: no line break
    assert out.splitlines()[-2] == '  { proto = "tcp", to = "198.51.100.1", port = 443 },  # 1 packet(s); users: ' \
        'eve?allow?=????2J'
