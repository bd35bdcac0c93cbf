"""What ipfw logs, as syslogd(8) writes it to /var/log/security.

A rule that logs with ``logdst syslog`` (or plain ``log`` while
``net.inet.ip.fw.verbose`` is 1) makes the kernel send one message per
packet, LOG_SECURITY | LOG_INFO; FreeBSD 15.1's sys/netpfil/ipfw/ip_fw_log.c,
ipfw_log_syslog()::

    log(LOG_SECURITY | LOG_INFO, "ipfw: %d %s %s%s %s via %s%s\\n",
        f ? f->rulenum : -1, action, proto, mark_str,
        args->flags & IPFW_ARGS_OUT ? "out" : "in", args->ifp->if_xname, fragment);

ACTION is "Accept", "Deny", "Reset", "Count", "SkipTo N", "Nat", ...; PROTO
is "TCP SRC:SPORT DST:DPORT", "UDP SRC:SPORT DST:DPORT", "ICMP:TYPE.CODE SRC
DST", "ICMPv6:TYPE.CODE SRC DST" or "P:N SRC DST", IPv6 addresses in
brackets.  syslogd's default syslog.conf puts ``security.*`` in
/var/log/security (usr.sbin/syslogd/syslog.conf); newsyslog keeps ten
bzip2'd copies.  syslogd.c writes a file's line as "TIME HOST kernel: MSG"
(fprintlog_bsd, the default: TIME is RFC3164_DATEFMT "%b %e %H:%M:%S",
without a year) or, with -O rfc5424, "<PRI>1 TIME HOST kernel - - - MSG"
(fprintlog_rfc5424: TIME "%FT%T.uuuuuu+hh:mm").
"""
from __future__ import annotations

import datetime
import re
from typing import Optional

VERDICTS = {"Accept": "pass", "Deny": "block", "Reset": "block", "Abort": "block", "Reject": "block",
            "Unreach": "block"}
_LINE = re.compile(r"ipfw: (-?\d+) (\S+(?: \d+)?) (TCP|UDP|ICMP|ICMPv6|P)(?::(\S+))? (\S+) (\S+)(?: mark:\S+)? "
                   r"(in|out) via (\S+)")
_RFC5424_PRI = re.compile(r"^<\d{1,3}>1 ")
_ISO_TIME = re.compile(r"(\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d)(\.\d+)?(Z|[+-]\d\d:\d\d)")
_BSD_TIME = re.compile(r"([A-Z][a-z]{2}) +(\d{1,2}) (\d\d):(\d\d):(\d\d) ")
MONTHS = ("Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec")


class Entry:
    __slots__ = ("time", "rule", "action", "verdict", "proto", "src", "sport", "dst", "dport", "direction",
                 "iface")


def parse(line: str, now: Optional[datetime.datetime] = None) -> Optional[Entry]:
    """One line of the security log, if it is an ipfw packet line.  syslogd's
    time has no year: the one that puts it not after NOW (local time)."""
    found = _LINE.search(line)
    when = _time(line, now or datetime.datetime.now())
    if not found or when is None:
        return None
    e = Entry()
    e.time = when
    e.rule, e.action = int(found.group(1)), found.group(2)
    e.verdict = VERDICTS.get(e.action.split()[0], "pass" if e.action.startswith("SkipTo") else e.action.lower())
    kind, what = found.group(3), found.group(4)
    e.proto = {"TCP": "tcp", "UDP": "udp", "ICMP": "icmp", "ICMPv6": "ipv6-icmp"}.get(kind, f"proto {what}")
    e.src, e.sport = _endpoint(found.group(5), kind in ("TCP", "UDP"))
    e.dst, e.dport = _endpoint(found.group(6), kind in ("TCP", "UDP"))
    e.direction, e.iface = found.group(7), found.group(8)
    return e


def _endpoint(text: str, ported: bool) -> tuple[str, int]:
    """"192.0.2.10:25", "[2001:db8::10]:25", or without the port."""
    if text.startswith("["):
        address, _, rest = text[1:].partition("]")
        return address, int(rest[1:]) if ported and rest[1:].isdigit() else 0
    if ported and ":" in text:
        address, _, port = text.rpartition(":")
        return address, int(port) if port.isdigit() else 0
    return text, 0


def _time(line: str, now: datetime.datetime) -> Optional[float]:
    """Epoch seconds of the line's timestamp: RFC 3164 ("Dec  3 14:05:11",
    syslogd's default) or RFC 5424 (syslogd -O rfc5424, after its "<PRI>1")."""
    head = _RFC5424_PRI.sub("", line, count=1).split(" ", 1)[0]
    iso = _ISO_TIME.fullmatch(head)
    if iso:  # fromisoformat before 3.11 takes only 3 or 6 digits of a fraction, and no Z
        fraction = (iso.group(2) or ".0")[1:7].ljust(6, "0")
        zone = "+00:00" if iso.group(3) == "Z" else iso.group(3)
        try:
            return datetime.datetime.fromisoformat(f"{iso.group(1)}.{fraction}{zone}").timestamp()
        except ValueError:
            return None
    found = _BSD_TIME.match(line)
    if not found or found.group(1) not in MONTHS:
        return None
    month, day = MONTHS.index(found.group(1)) + 1, int(found.group(2))
    hour, minute, second = (int(found.group(i)) for i in (3, 4, 5))
    for year in (now.year, now.year - 1):
        try:
            when = datetime.datetime(year, month, day, hour, minute, second)
        except ValueError:  # Feb 29 of a year without it
            continue
        if when <= now + datetime.timedelta(days=1):
            return when.timestamp()
    return None


def line(time: float, host: str, rule: int, action: str, proto: str, src: str, sport: int, dst: str, dport: int,
         direction: str, iface: str) -> str:
    """The line syslogd writes for one packet (the simulated host's log)."""
    def at(address: str, port: int) -> str:
        shown = f"[{address}]" if ":" in address else address
        return f"{shown}:{port}" if proto in ("tcp", "udp") else shown

    when = datetime.datetime.fromtimestamp(time)
    stamp = f"{MONTHS[when.month - 1]} {when.day:2d} {when:%H:%M:%S}"
    if proto in ("tcp", "udp"):
        what = f"{proto.upper()} {at(src, sport)} {at(dst, dport)}"
    else:
        kind = "ICMP:8.0" if proto == "icmp" else "ICMPv6:128.0"  # an echo request
        what = f"{kind} {at(src, 0)} {at(dst, 0)}"
    return f"{stamp} {host} kernel: ipfw: {rule} {action} {what} {direction} via {iface}\n"
