"""The simulated sysctl(8)."""
from __future__ import annotations

from .getopt import not_modelled, options

# RW integers jailhooks reads and the tests set, 0 or 1: ipfw on or off (what `ipfw disable firewall`
# sets; ip_fw_pfil.c), and whether a packet nat translated leaves ipfw (1) or goes on at the next rule
# (0; ip_fw2.c fw_one_pass, ip_fw_pfil.c)
SWITCHES = ("net.inet.ip.fw.enable", "net.inet.ip.fw.one_pass")


def run(st, args, input, out, err) -> int:
    # sbin/sysctl/sysctl.c: getopt(argc, argv, "AabB:def:hiNnoqtTwWxX"), and its usage()
    flags, _, names = options(args, "sysctl", "AabB:def:hiNnoqtTwWxX", "inq",
                              "usage: sysctl [-bdehiNnoqTtWx] [ -B <bufsize> ] [-f filename] name[=value] ...\n"
                              "       sysctl [-bdehNnoqTtWx] [ -B <bufsize> ] -a\n", 1, err)
    rc = 0
    for item in names:
        name, eq, value = item.partition("=")
        if name not in st["sysctl"]:
            if "-i" not in flags:
                err.append(f"sysctl: unknown oid '{name}'\n")
                rc = 1
            continue
        old = st["sysctl"][name]
        if eq and name in SWITCHES:
            if value not in ("0", "1"):
                return not_modelled("sysctl", f"{name}={value}", err) if value.isdigit() else _invalid(value, err)
            st["sysctl"][name] = value
            out.append(f"{value}\n" if "-n" in flags else f"{name}: {old} -> {value}\n")
            continue
        if eq:
            if name != "net.fibs":
                err.append(f"sysctl: oid '{name}' is read only\n")
                rc = 1
                continue
            if not value.isdigit() or not 1 <= int(value) <= 65535:
                err.append(f"sysctl: invalid integer '{value}'\n")
                rc = 1
                continue
            if int(value) < int(old):  # net.fibs only grows at run time
                err.append(f"sysctl: {name}={value}: Capabilities insufficient\n")
                rc = 1
                continue
            st["sysctl"][name] = value
            for fib in range(int(old), int(value)):
                st["routes"].setdefault(str(fib), {})
            out.append(f"{value}\n" if "-n" in flags else f"{name}: {old} -> {value}\n")
        else:
            out.append(f"{old}\n" if "-n" in flags else f"{name}: {old}\n")
    return rc


def _invalid(value: str, err) -> int:
    err.append(f"sysctl: invalid integer '{value}'\n")
    return 1
