"""``jailhooks hook iocage|pot ...``: the hook the managers that cannot pass
a jail's name themselves call, provided by the jailhooks command itself (a
pip install has it as much as the port, and an upgrade of jailhooks reaches
every jail: nothing is copied anywhere).

* iocage runs a jail's ``exec_*`` property itself, through ``/bin/sh -c``,
  with no ``$name`` substitution: ``jailhooks hook iocage PHASE ioc-NAME
  [PREVIOUS HOOK...]`` runs the phase, then the jail's previous hook: on the
  way up only if jailhooks succeeded (a failure makes iocage refuse the
  start), on the way down whatever jailhooks returned.
* pot copies a hook script into the pot at ``set-hook`` and runs it with
  ``_POT_NAME``, ``_POT_IP`` and, for an alias pot with several addresses,
  ``_POT_IP_LIST`` (the names of ``_POT_IP_0``, ``_POT_IP_1``, ...).  Its
  script is one line, ``exec jailhooks hook pot PHASE``.  pot does not check
  hook exit codes: a failing prestart does not stop the pot.
"""
from __future__ import annotations

from ..errors import UsageError

TYPE_CHECKING = False  # no typing at run time (main.py)
if TYPE_CHECKING:
    from typing import Callable, Mapping

UP = ("create", "prestart", "created", "poststart")
PHASES = ("prestart", "poststart", "prestop", "poststop")
IOCAGE = ("prestart", "created", "poststart", "prestop", "poststop")  # iocage also runs exec_created


def iocage(run: Callable[..., int], args: list[str]) -> int:
    """ARGS: PHASE JAIL [PREVIOUS HOOK...]; RUN(phase, names, ip4, ip6) -> exit code."""
    if len(args) < 2 or args[0] not in IOCAGE + ("create", "destroy"):
        raise UsageError("hook iocage: usage: jailhooks hook iocage PHASE JAIL [PREVIOUS HOOK...]")
    phase, jail, previous = args[0], args[1], args[2:]
    code = run(phase, [jail], None, None)
    if phase in UP and code:
        return code
    if previous:
        import subprocess

        try:
            theirs = subprocess.run(previous).returncode  # the words iocage's sh split; no shell here
        except OSError as exc:
            raise UsageError(f"hook iocage: the previous hook {previous[0]!r} cannot run: {exc.strerror}") from None
        code = code or theirs
    return code


def pot_phase(arg: str) -> str:
    """PHASE, or the path pot runs the script as (conf/prestart.sh)."""
    name = arg.rsplit("/", 1)[-1]
    name = name[:-3] if name.endswith(".sh") else name
    if name not in PHASES:
        raise UsageError(f"hook pot: {arg!r} is not one of {', '.join(PHASES)} (or PHASE.sh)")
    return name


def pot_addresses(env: Mapping[str, str]) -> tuple[list[str], list[str]]:
    """The pot's addresses: every _POT_IP_N of _POT_IP_LIST (alias pots),
    else _POT_IP."""
    names = env.get("_POT_IP_LIST", "").split()
    values = [env.get(n, "") for n in names if n.startswith("_POT_IP_")] or env.get("_POT_IP", "").split()
    ip4 = [v for v in values if "." in v and ":" not in v]
    ip6 = [v for v in values if ":" in v]
    return ip4, ip6


def pot(run: Callable[..., int], args: list[str], env: Mapping[str, str]) -> int:
    if len(args) != 1:
        raise UsageError("hook pot: usage: jailhooks hook pot PHASE (pot sets _POT_NAME and _POT_IP)")
    phase = pot_phase(args[0])
    name = env.get("_POT_NAME", "")
    if not name:
        raise UsageError("hook pot: _POT_NAME is not set (not run by pot?)")
    ip4, ip6 = pot_addresses(env)
    return run(phase, [name], ip4 or None, ip6 or None)
