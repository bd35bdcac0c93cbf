"""The lifecycle engine: resolve a jail, run a phase's hooks in order.

Up phases (create, prestart, poststart) fail closed: the first failure stops
the run and every step this run registered with ``ctx.on_undo`` is undone,
newest first.  Down phases (prestop, poststop, destroy) run every plugin and
report every failure.  Phases of one jail never interleave: each jail has a
lock file, waited on for at most ``[host] lock_timeout`` seconds.
"""
from __future__ import annotations

import os
import sys
from contextlib import contextmanager
from typing import Any, Iterator

from . import validate
from .config import Settings
from .context import COMPOSITE, PHASES, UP_PHASES, Context, Jail
from .errors import DataError, ExitCode, JailhooksError, UsageError
from .host import Host
from .pluginmanager import Plugins, call_plugin


class Failure:
    __slots__ = ("plugin", "phase", "message", "exit_code")

    def __init__(self, plugin: str, phase: str, message: str, exit_code: int) -> None:
        self.plugin, self.phase, self.message, self.exit_code = plugin, phase, message, exit_code

    def __repr__(self) -> str:
        return f"Failure({self.plugin!r}, {self.phase!r}, {self.message!r}, {self.exit_code})"


class Outcome:
    """What one run of one jail did: notes, failures, and the undo steps taken."""

    __slots__ = ("jail", "phases", "notes", "failures", "undone")

    def __init__(self, jail: str, phases: tuple[str, ...]) -> None:
        self.jail = jail
        self.phases = phases
        self.notes: list[tuple[str, str, str]] = []  # (phase, plugin, text)
        self.failures: list[Failure] = []
        self.undone: list[str] = []

    @property
    def ok(self) -> bool:
        return not self.failures

    @property
    def exit_code(self) -> int:
        return self.failures[0].exit_code if self.failures else ExitCode.OK


def expand_phase(phase: str) -> tuple[str, ...]:
    if phase in COMPOSITE:
        return COMPOSITE[phase]
    if phase in PHASES:
        return (phase,)
    raise UsageError(f"unknown phase {phase!r}: use one of {', '.join(PHASES + tuple(COMPOSITE))}")


def describe(exc: BaseException) -> tuple[str, int]:
    """(one line, exit code) for what a step raised; text from outside is escaped."""
    if isinstance(exc, JailhooksError):
        return validate.escaped(str(exc)), int(exc.exit_code)
    if isinstance(exc, ValueError):  # invalid values from plugins' rules and the like
        return validate.escaped(str(exc)), int(ExitCode.DATAERR)
    if not isinstance(exc, Exception):  # sys.exit(), KeyboardInterrupt ... from a plugin
        message = f"raised {type(exc).__name__}({_args(exc)}): the phase fails closed"
        return validate.escaped(message), int(ExitCode.FAILED)
    return validate.escaped(f"{type(exc).__name__}: {_args(exc)}"), int(ExitCode.FAILED)


def _args(exc: BaseException) -> str:
    """EXC's message without calling anything a plugin's exception class defines."""
    try:
        args = BaseException.__getattribute__(exc, "args")
        return ", ".join(str.__str__(a) if isinstance(a, str) else repr(a) for a in args)
    except BaseException:  # a repr() of the plugin's own making that raises
        return "?"


class Engine:
    def __init__(self, settings: Settings, plugins: Plugins, host: Host, registry: Any,
                 dry_run: bool = False, verbose: int = 0):
        self.settings, self.plugins, self.host = settings, plugins, host
        self.registry, self.dry_run, self.verbose = registry, dry_run, verbose

    # -- facts ------------------------------------------------------------------
    def resolve(self, name: str, path: str | None = None, ip4: list[str] | None = None,
                ip6: list[str] | None = None, errors: list[Failure] | None = None) -> Jail:
        """The jail's facts.  With ERRORS (the way down), a facts source that
        fails is recorded there and the next one is asked: a stop must still
        take the jail's rules away when, say, jls fails."""
        name = canonical(self.settings, checked_name(name))
        try:
            ip4 = [validate.jail_address(a, 4) for a in ip4 or []] or None
            ip6 = [validate.jail_address(a, 6) for a in ip6 or []] or None
            path = None if path is None else _path(path)
        except ValueError as exc:
            raise DataError(f"jail {name}: {exc}") from None
        found = vnet = None
        for plugin, caller in self.plugins.callers("jailhooks_jail_facts"):
            try:
                found = call_plugin(plugin, caller, name=name, settings=self.settings, host=self.host)
                if found is not None:
                    found = _checked_facts(found, name, plugin)
            except Exception as exc:
                if errors is None:
                    raise
                message, code = describe(exc)
                errors.append(Failure(plugin, "facts", message, code))
                found = None
                continue
            if isinstance(found, Jail) and found.vnet and not found.addresses and vnet is None:
                # jls shows no addresses for a VNET jail (they live in its own
                # stack): keep its kernel facts, take the addresses from the
                # next source that has them (its manager or the config)
                vnet, found = found, None
                continue
            if found is not None:
                break
        if vnet is not None:
            found = vnet if not isinstance(found, Jail) else vnet._replace(
                ip4=found.ip4, ip6=found.ip6, source=f"{vnet.source} + {found.source}")
        jail = found if isinstance(found, Jail) else Jail(name, source="none")
        changes: dict[str, Any] = {}
        if path is not None:
            changes["path"] = path
        if ip4 is not None:
            changes["ip4"] = tuple(ip4)
        if ip6 is not None:
            changes["ip6"] = tuple(ip6)
        if changes:
            changes["source"] = f"options + {jail.source}" if jail.source != "none" else "options"
        return jail.with_(**changes) if changes else jail

    # -- phases -------------------------------------------------------------------
    def context(self, jail: Jail, phase: str) -> Context:
        return Context(jail=jail, phase=phase, settings=self.settings, host=self.host, registry=self.registry,
                       dry_run=self.dry_run, policy=self._policy)

    def _policy(self, ctx: Context, lease: Any) -> Any:
        """The jail's policy: the policy settings, its facts and lease, and
        every plugin's contributions (jailhooks_policy_rules, and the old
        name jailhooks_pf_rules), collected here, once per context."""
        from .policy import POLICY_SECTION, Policy, resolve_match

        settings = ctx.config(POLICY_SECTION)
        contributions = []
        for hook in ("jailhooks_policy_rules", "jailhooks_pf_rules"):
            for plugin, rules in self.plugins.collect(hook, ctx=ctx):
                if not isinstance(rules, (list, tuple)):
                    raise DataError(f"plugin {plugin}: {hook} must return a list of rules")
                contributions.append((plugin, tuple(rules)))
        try:
            return Policy(ctx.jail.name, ctx.jail.ip4, ctx.jail.ip6, lease.uid_range if lease else None,
                          resolve_match(settings["match"], bool(ctx.jail.addresses)), settings["interface"] or None,
                          settings["default"], settings["log"], tuple(contributions), ctx.jail.vnet,
                          settings["mode"] == "learn")
        except ValueError as exc:
            raise DataError(str(exc)) from None

    def run(self, phase: str, jail: Jail) -> Outcome:
        phases = expand_phase(phase)
        outcome = Outcome(jail.name, phases)
        with self.jail_lock(jail.name):
            if phases[0] in UP_PHASES:
                self._up(phases, jail, outcome)
            else:
                for each in phases:
                    self._every(each, self.context(jail, each), outcome, down=True)
        return outcome

    def sync(self, jail: Jail) -> Outcome:
        """``jailhooks_sync`` for one running jail: every plugin, every failure reported."""
        outcome = Outcome(jail.name, ("sync",))
        with self.jail_lock(jail.name):
            self._every("sync", self.context(jail, "sync"), outcome)
        return outcome

    def release(self, jail: Jail) -> Outcome:
        """``jailhooks_release`` before a jail's lease ends: every plugin, every
        failure reported.  The caller holds the jail's lock (it ends the lease
        under the same lock)."""
        outcome = Outcome(jail.name, ("release",))
        self._every("release", self.context(jail, "release"), outcome, down=True)
        return outcome

    @staticmethod
    def _call(ctx: Context, plugin: str, caller: Any) -> None:
        ctx.plugin = plugin  # whose undo steps and notes these are
        caller(ctx=ctx)

    def _fail(self, outcome: Outcome, phase: str, plugin: str, exc: BaseException) -> None:
        message, code = describe(exc)
        if not isinstance(exc, JailhooksError) and self.verbose:
            import traceback

            sys.stderr.write("".join(traceback.format_exception(type(exc), exc, exc.__traceback__)))
        outcome.failures.append(Failure(plugin, phase, message, code))

    def _up(self, phases: tuple[str, ...], jail: Jail, outcome: Outcome) -> None:
        undo: list = []
        # created and poststart alone come right after jail(8) made the jail; a
        # create or prestart on a jail with a jid is a re-run on a running jail
        was_running = jail.jid is not None and phases[0] not in ("created", "poststart")
        loaded: dict = {}  # what this run's prestart proved (start = prestart + poststart in one run)
        if "prestart" in phases and jail.addresses and not self.dry_run:
            try:
                clash = address_conflicts(jail, self.host.jails(), self.settings)
            except Exception as exc:
                self._fail(outcome, "prestart", "core", exc)
                return
            if clash:
                self._fail(outcome, "prestart", "core", DataError(clash[0]))
                return
        for phase in phases:
            ctx = self.context(jail, phase)
            ctx.was_running = was_running
            ctx.this_run = loaded
            ctx._undo = undo  # one undo stack for the whole run (start = prestart + poststart)
            for plugin, caller in self.plugins.callers(f"jailhooks_{phase}"):
                try:
                    self._call(ctx, plugin, caller)
                except BaseException as exc:  # sys.exit(), KeyboardInterrupt ... from a plugin: fail closed
                    self._fail(outcome, phase, plugin, exc)
                    self._notes(outcome, phase, ctx)
                    self._undo(undo, outcome)
                    return
            self._notes(outcome, phase, ctx)
            if phase == "prestart" and len(phases) > 1 and jail.jid is None:
                jail = self.refresh(jail)  # created, poststart: the jail runs now, jls knows its jid

    def _undo(self, undo: list, outcome: Outcome) -> None:
        for plugin, what, fn in reversed(undo):
            try:
                fn()
                outcome.undone.append(f"{plugin}: {what}")
            except BaseException as exc:
                message, code = describe(exc)
                outcome.failures.append(Failure(plugin, "undo", f"undo {what}: {message}", code))

    def _every(self, phase: str, ctx: Context, outcome: Outcome, down: bool = False) -> None:
        """Best effort: every implementation runs, whatever failed before."""
        for plugin, caller in self.plugins.callers(f"jailhooks_{phase}", down=down):
            try:
                self._call(ctx, plugin, caller)
            except BaseException as exc:
                self._fail(outcome, phase, plugin, exc)
        self._notes(outcome, phase, ctx)

    @staticmethod
    def _notes(outcome: Outcome, phase: str, ctx: Context) -> None:
        for plugin, notes in ctx._notes.items():
            outcome.notes.append((phase, plugin, "; ".join(notes)))

    def refresh(self, jail: Jail) -> Jail:
        running = self.host.jail(jail.name, fresh=True)
        return jail.with_(jid=running["jid"]) if running else jail

    # -- locking -------------------------------------------------------------------
    @contextmanager
    def jail_lock(self, name: str) -> Iterator[None]:
        if self.dry_run:
            yield
            return
        from .jailfs import locked

        with locked(os.path.join(self.settings.state_dir, "locks"), f"{name}.lock", self.settings.host["lock_timeout"],
                    f"jail {name}: another jailhooks run holds its lock"):
            yield


def address_conflicts(jail: Jail, running: list[dict[str, Any]], settings: Settings) -> list[str]:
    """One address, one jail: the kernel lets two jails share an address
    (prison_ip_conflict_check), and then ``from <jail_a>`` also matches jail
    b's packets.  Lines naming each running or configured jail (other than
    JAIL) that holds one of JAIL's addresses."""
    mine = set(jail.addresses)
    found = []
    for other in running:
        if other["name"] != jail.name:
            for address in sorted(mine & set(other["ip4"] + other["ip6"])):
                found.append(f"jail {jail.name}: address {address} is also held by running jail {other['name']}: "
                             "one address, one jail (pf could not tell their packets apart)")
    for name, conf in sorted(settings.jails.items()):
        if name != jail.name and not any(o["name"] == name for o in running):
            for address in sorted(mine & set(conf.ip4 + conf.ip6)):
                found.append(f"jail {jail.name}: address {address} is also configured for jail {name}: "
                             "one address, one jail (pf could not tell their packets apart)")
    return found


def checked_name(name: str) -> str:
    """NAME if it is a valid jail name, else a DataError naming what is wrong."""
    try:
        return validate.jail_name(name)
    except ValueError as exc:
        raise DataError(str(exc)) from None


def canonical(settings: Settings, name: str) -> str:
    """The name the kernel knows the jail by (see managers.canonical_name)."""
    if not settings.section("managers"):
        return name
    from .managers import canonical_name

    return canonical_name(settings, name)


def _checked_facts(found: Any, name: str, plugin: str) -> Jail:
    """A facts source's answer, validated like any input: it is a Jail, of the
    jail asked about (no source renames a jail), with valid addresses and path."""
    if not isinstance(found, Jail):
        raise DataError(f"plugin {plugin}: jailhooks_jail_facts returned {type(found).__name__}, not a Jail")
    fields = tuple.__getitem__(found, slice(None))  # the values, not what a subclass's methods say
    if validate.exact(fields[0]) != name:
        raise DataError(f"plugin {plugin}: facts for jail {name} name another jail "
                        f"({validate.shown(str.__str__(fields[0]) if isinstance(fields[0], str) else '?')})")
    path, ip4, ip6, hostname, jid, source, vnet = fields[1:8]
    try:
        # a new Jail of exact built-in values: no subclass, no method of the plugin's survives
        return Jail(name, None if path is None else _path(path),
                    tuple(validate.jail_address(a, 4) for a in list(ip4)),
                    tuple(validate.jail_address(a, 6) for a in list(ip6)),
                    None if hostname is None else validate.shown(validate.exact(hostname), 255),
                    None if jid is None else _jid(validate.exact(jid)),
                    validate.shown(validate.exact(source) if isinstance(source, str) else plugin, 64),
                    vnet is True)
    except (TypeError, ValueError) as exc:
        raise DataError(f"plugin {plugin}: facts of jail {name}: {exc}") from None


def _jid(value: Any) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise ValueError(f"jid {value!r} is not a positive integer")
    return value


def _path(value: str) -> str:
    from .config import absolute_path

    return absolute_path(validate.exact(value))
