"""The simulated tcpdump(1), as ``log --follow`` runs it: ``tcpdump -U -w -
-i pflog0`` writes what pf logs to stdout as a pcap stream, until it is
stopped.  The simulated pflog0 carries what the simulated pflogd writes
(sim/pflogd.py): the stream is the records appended to its file after the
capture began, behind a pcap header of tcpdump's own (snapshot length
262144, link type PFLOG).

From FreeBSD 15.1's contrib/tcpdump/tcpdump.c: its getopt_long optstring
SHORTOPTS (as FreeBSD builds it), exit status 1 (S_ERR_HOST_PROGRAM) for a
bad option or device, "listening on ..." on stderr once the capture runs,
and with -U the header flushed at once (pcap_dump_flush after
pcap_dump_open).  A capture that does not write pcap to stdout, or any
interface but pflog0, is not modelled.
"""
from __future__ import annotations

import struct

from .follow import Growing
from .getopt import not_modelled, options

SHORTOPTS = "aAbB:c:C:dDeE:fF:gG:hHi:Ij:JKlLm:M:nNOpqQ:r:s:StT:uUvV:w:W:xXy:Yz:Z:#"
USAGE = ("Usage: tcpdump [-AbdDefhHIJKlLnNOpqStuUvxX#] [ -B size ] [ -c count ] [--count]\n"
         "\t\t[ -C file_size ] [ -E algo:secret ] [ -F file ] [ -G seconds ]\n"
         "\t\t[ -i interface ] [ --immediate-mode ] [ -j tstamptype ]\n"
         "\t\t[ -M secret ] [ --number ] [ --print ] [ -Q in|out|inout ]\n"
         "\t\t[ -r file ] [ -s snaplen ] [ -T type ] [ --version ]\n"
         "\t\t[ -V file ] [ -w file ] [ -W filecount ] [ -y datalinktype ]\n"
         "\t\t[ --time-stamp-precision precision ] [ --micro ] [ --nano ]\n"
         "\t\t[ -z postrotate-command ] [ -Z user ] [ expression ]\n")
SNAPLEN = 262144
INTERFACES = ("em0", "lo0", "pflog0")  # the simulated host's (sim/pfctl.py)


def follow(args: list[str], err: list[str]) -> int:
    """Check a capture's arguments as tcpdump does; 0 when it would run."""
    _, opts, expression = options(args, "tcpdump", SHORTOPTS, "Uwi", USAGE, 1, err)
    given = dict(opts)
    if expression:
        return not_modelled("tcpdump", "a filter expression", err)
    if given.get("-w") != "-" or "-U" not in given:
        return not_modelled("tcpdump", "a capture that does not write pcap to stdout (-U -w -)", err)
    device = given.get("-i")
    if device is None:
        return not_modelled("tcpdump", "a capture without -i", err)
    if device not in INTERFACES:
        err.append(f"tcpdump: {device}: No such device exists\n")  # pcap_statustostr(PCAP_ERROR_NO_SUCH_DEVICE)
        return 1
    if device != "pflog0":
        return not_modelled("tcpdump", f"a capture on {device}", err)
    err.append(f"tcpdump: listening on {device}, link-type PFLOG (OpenBSD pflog file), snapshot length {SNAPLEN} "
               "bytes\n")
    return 0


def capture(argv: tuple[str, ...], path: str, stderr: str) -> Growing:
    """The stream of a capture on the simulated pflog0: a pcap header of
    tcpdump's own, then each record the simulated pflogd appends to PATH
    (a pcap file: a PATH made after the start is read after its header)."""
    return Growing(argv, path, struct.pack("<IHHiIII", 0xA1B2C3D4, 2, 4, 0, 0, SNAPLEN, 117), 24, stderr)
