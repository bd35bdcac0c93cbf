"""POSIX getopt(3), as FreeBSD's tools parse their options, and the exit of
a simulated command."""
from __future__ import annotations


class GetoptError(Exception):
    pass


def getopt(args: list[str], shortopts: str) -> tuple[list[tuple[str, str]], list[str]]:
    """POSIX getopt(3) as FreeBSD's tools use it: short options, clustered or
    not, option arguments attached or separate, "--" ends them, and the first
    operand ends them too.  (The getopt module pulls in gettext: slow.)"""
    opts: list[tuple[str, str]] = []
    i = 0
    while i < len(args) and args[i].startswith("-") and args[i] != "-":
        if args[i] == "--":
            return opts, args[i + 1:]
        arg, j = args[i], 1
        while j < len(arg):
            ch = arg[j]
            k = shortopts.find(ch)
            if ch == ":" or k < 0:
                raise GetoptError(f"illegal option -- {ch}")
            if shortopts[k + 1:k + 2] == ":":
                value = arg[j + 1:]
                if not value:
                    i += 1
                    if i >= len(args):
                        raise GetoptError(f"option requires an argument -- {ch}")
                    value = args[i]
                opts.append((f"-{ch}", value))
                break
            opts.append((f"-{ch}", ""))
            j += 1
        i += 1
    return opts, args[i:]




class _Exit(Exception):
    def __init__(self, code: int):
        self.code = code


def options(args: list[str], shortopts: str, usage: str, code: int, err: list[str]):
    """(flags, options, operands) by getopt(3); on a bad option the tool's
    USAGE on stderr and exit CODE, as the real tool does."""
    try:
        opts, rest = getopt(args, shortopts)
    except GetoptError:
        err.append(usage)
        raise _Exit(code) from None
    return {o for o, _ in opts}, opts, rest
