"""pflog records: the pcap files pflogd(8) writes (link type PFLOG), read and
(for the simulated host) written.

Each record is a ``struct pfloghdr`` (FreeBSD 15.1 sys/net/if_pflog.h) and
the packet::

    struct pfloghdr {                          offset
        u_int8_t    length;                    0   PFLOG_REAL_HDRLEN (69)
        sa_family_t af;                        1   (u_int8_t on FreeBSD)
        u_int8_t    action;                    2   PF_PASS 0, PF_DROP 1, ...
        u_int8_t    reason;                    3
        char        ifname[IFNAMSIZ];          4
        char        ruleset[PFLOG_RULESET_NAME_SIZE];  20   the anchor's own name, cut to 15 bytes
        u_int32_t   rulenr;                    36  network order
        u_int32_t   subrulenr;                 40  network order; -1 outside an anchor
        uid_t       uid;                       44  the socket's, with log (user); else -1
        pid_t       pid;                       48
        uid_t       rule_uid;                  52
        pid_t       rule_pid;                  56
        u_int8_t    dir;                       60  PF_IN 1, PF_OUT 2
        u_int8_t    pad1;                      61
        sa_family_t naf;                       62
        u_int8_t    pad[1];                    63
        u_int32_t   ridentifier;               64  network order (if_pflog.c: htonl)
        u_int8_t    reserve;                   68
        u_int8_t    pad2[3];                   69
    };                                         72  PFLOG_HDRLEN = PFLOG_ALIGN(69)

if_pflog.c fills ``rulenr`` with the anchor rule's number and ``subrulenr``
with the rule's number inside the anchor, ``ruleset`` with ``strlcpy`` of
the anchor's name, ``uid`` only when the rule logs ``(user)`` and the
socket was found.  uid, pid, rule_uid and rule_pid are in the host's byte
order, which the pcap file's magic number gives.
"""
from __future__ import annotations

import ipaddress
import struct
from typing import BinaryIO, Iterator, Optional

LINKTYPE_PFLOG = 117
PFLOG_REAL_HDRLEN = 69
PFLOG_HDRLEN = 72
ACTIONS = {0: "pass", 1: "block", 2: "scrub", 3: "noscrub", 4: "nat", 5: "nonat", 6: "binat", 7: "nobinat",
           8: "rdr", 9: "nordr", 10: "synproxy-drop", 11: "defer", 12: "match"}
DIRECTIONS = {0: "in/out", 1: "in", 2: "out"}
PROTOS = {6: "tcp", 17: "udp", 1: "icmp", 58: "ipv6-icmp"}
NO_UID = 0xFFFFFFFF


class Record:
    __slots__ = ("time", "af", "action", "reason", "ifname", "ruleset", "rulenr", "subrulenr", "uid", "dir",
                 "ridentifier", "proto", "src", "dst", "sport", "dport")


class PflogError(ValueError):
    pass


def read(fh: BinaryIO, name: str = "pflog") -> Iterator[Record]:
    """The records of a pcap file of link type PFLOG; a last record cut short
    (pflogd still writing) ends the file."""
    form = header(fh, name)
    return records(fh, *form) if form is not None else iter(())


def header(fh: BinaryIO, name: str = "pflog") -> Optional[tuple[str, bool]]:
    """The pcap file header of FH: (byte order, nanosecond times), or None
    for an empty file."""
    head = fh.read(24)
    if len(head) < 24:
        return None
    magic = head[:4]
    if magic in (b"\xd4\xc3\xb2\xa1", b"\x4d\x3c\xb2\xa1"):
        order = "<"
    elif magic in (b"\xa1\xb2\xc3\xd4", b"\xa1\xb2\x3c\x4d"):
        order = ">"
    else:
        raise PflogError(f"{name}: not a pcap file")
    nano = magic in (b"\x4d\x3c\xb2\xa1", b"\xa1\xb2\x3c\x4d")
    linktype = struct.unpack(order + "I", head[20:24])[0] & 0x0FFFFFFF
    if linktype != LINKTYPE_PFLOG:
        raise PflogError(f"{name}: link type {linktype}, not PFLOG ({LINKTYPE_PFLOG})")
    return order, nano


def records(fh: BinaryIO, order: str, nano: bool) -> Iterator[Record]:
    """The records after the file header, as they can be read (a pipe from
    tcpdump gives them as they come)."""
    while True:
        rec = fh.read(16)
        if len(rec) < 16:
            return
        sec, frac, caplen, _ = struct.unpack(order + "IIII", rec)
        data = fh.read(caplen)
        if len(data) < caplen:
            return
        record = decode(data, order)
        if record is not None:
            record.time = sec + frac / (1e9 if nano else 1e6)
            yield record


def decode(data: bytes, order: str = "<") -> Optional[Record]:
    """One pflog record (header and packet); None if it is too short to be one."""
    if len(data) < PFLOG_HDRLEN:
        return None
    length = data[0]
    r = Record()
    r.time = 0.0
    r.af, r.action, r.reason = data[1], ACTIONS.get(data[2], str(data[2])), data[3]
    r.ifname = data[4:20].split(b"\0", 1)[0].decode("ascii", "replace")
    r.ruleset = data[20:36].split(b"\0", 1)[0].decode("ascii", "replace")
    r.rulenr, r.subrulenr = struct.unpack("!II", data[36:44])
    r.uid = struct.unpack(order + "I", data[44:48])[0]
    r.dir = DIRECTIONS.get(data[60], str(data[60]))
    r.ridentifier = struct.unpack("!I", data[64:68])[0]
    packet = data[(length + 3) & ~3:]  # BPF_WORDALIGN(length), as tcpdump's print-pflog.c
    r.proto, r.src, r.dst, r.sport, r.dport = _packet(packet)
    return r


def _packet(p: bytes) -> tuple[str, str, str, int, int]:
    if p and p[0] >> 4 == 4 and len(p) >= 20:
        proto, rest = p[9], p[(p[0] & 0x0F) * 4:]  # after the header's IHL words
        src, dst = str(ipaddress.IPv4Address(p[12:16])), str(ipaddress.IPv4Address(p[16:20]))
    elif p and p[0] >> 4 == 6 and len(p) >= 40:
        proto, rest = p[6], p[40:]  # the next header right after the fixed one: no extension headers read
        src, dst = str(ipaddress.IPv6Address(p[8:24])), str(ipaddress.IPv6Address(p[24:40]))
    else:
        return "?", "?", "?", 0, 0
    sport = dport = 0
    if proto in (6, 17) and len(rest) >= 4:
        sport, dport = struct.unpack("!HH", rest[:4])
    return PROTOS.get(proto, str(proto)), src, dst, sport, dport


# -- writing (the simulated host's pflogd) -------------------------------------------------------------

def file_header() -> bytes:
    """pcap, microseconds, little-endian (the byte order of an amd64 host), snaplen 116 (pflogd's default)."""
    return struct.pack("<IHHiIII", 0xA1B2C3D4, 2, 4, 0, 0, 116, LINKTYPE_PFLOG)


def encode(time: float, action: int, ifname: str, ruleset: str, rulenr: int, subrulenr: int, uid: Optional[int],
           direction: int, ridentifier: int, proto: str, src: str, dst: str, sport: int, dport: int) -> bytes:
    """One pcap record: the pfloghdr if_pflog.c fills, then the packet's IP
    and TCP or UDP headers."""
    src_ip, dst_ip = ipaddress.ip_address(src), ipaddress.ip_address(dst)
    af = 2 if src_ip.version == 4 else 28  # AF_INET, AF_INET6 (FreeBSD)
    hdr = bytearray(PFLOG_HDRLEN)
    hdr[0], hdr[1], hdr[2] = PFLOG_REAL_HDRLEN, af, action
    hdr[4:20] = ifname.encode()[:15].ljust(16, b"\0")
    hdr[20:36] = ruleset.encode()[:15].ljust(16, b"\0")  # strlcpy into 16 bytes
    hdr[36:44] = struct.pack("!II", rulenr, subrulenr & 0xFFFFFFFF)
    hdr[44:60] = struct.pack("<IiIi", NO_UID if uid is None else uid, -1, 0, 0)
    hdr[60] = direction
    hdr[62] = af
    hdr[64:68] = struct.pack("!I", ridentifier)
    number = {"tcp": 6, "udp": 17, "icmp": 1, "ipv6-icmp": 58}[proto]
    if proto == "tcp":
        l4 = struct.pack("!HHIIBBHHH", sport, dport, 1, 0, 5 << 4, 0x02, 65535, 0, 0)
    elif proto == "udp":
        l4 = struct.pack("!HHHH", sport, dport, 8, 0)
    else:
        l4 = struct.pack("!BBHHH", 8 if number == 1 else 128, 0, 0, 1, 1)
    if src_ip.version == 4:
        ip = struct.pack("!BBHHHBBH4s4s", 0x45, 0, 20 + len(l4), 1, 0, 64, number, 0, src_ip.packed, dst_ip.packed)
        ip = ip[:10] + struct.pack("!H", _checksum(ip)) + ip[12:]
    else:
        ip = struct.pack("!IHBB16s16s", 6 << 28, len(l4), number, 64, src_ip.packed, dst_ip.packed)
    data = bytes(hdr) + ip + l4
    sec = int(time)
    return struct.pack("<IIII", sec, int((time - sec) * 1e6), len(data), len(data)) + data


def _checksum(header: bytes) -> int:
    total = sum(struct.unpack(f"!{len(header) // 2}H", header))
    while total >> 16:
        total = (total & 0xFFFF) + (total >> 16)
    return ~total & 0xFFFF
