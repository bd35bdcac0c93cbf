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


NOT_MODELLED = 70  # the exit of anything the simulation does not model (EX_SOFTWARE)


def not_modelled(tool: str, what: str, err: list[str]) -> int:
    """Say that WHAT, which the real TOOL does, is not simulated; exit 70."""
    err.append(f"{tool}: {what} is not modelled by the simulated host\n")
    return NOT_MODELLED


def options(args: list[str], tool: str, real: str, modelled: str, usage: str, code: int, err: list[str]):
    """(flags, options, operands) by getopt(3) over REAL, the tool's own
    optstring (from its FreeBSD source).  An option the tool does not have,
    or one missing its argument, gets getopt's message, the tool's USAGE
    and exit CODE, as on FreeBSD; an option the tool has but the simulation
    does not model (its letter is not in MODELLED) exits 70, saying so."""
    try:
        opts, rest = getopt(args, real)
    except GetoptError as exc:
        err.append(f"{tool}: {exc}\n{usage}")
        raise _Exit(code) from None
    for opt, _ in opts:
        if opt[1] not in modelled:
            raise _Exit(not_modelled(tool, opt, err))
    return {o for o, _ in opts}, opts, rest
