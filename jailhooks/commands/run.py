"""``jailhooks run PHASE JAIL...``: the command the jail managers call, and
all that it needs (the hook path imports this, not the admin commands).
Returns an exit code; errors are JailhooksError subclasses, turned into one
line and an exit code by main.py."""
from __future__ import annotations

from .. import logbook, validate
from ..app import App
from ..engine import Outcome
from ..errors import ExitCode, JailhooksError, UsageError
from ..types import UP_PHASES, Jail


def run(app: App, phase: str, names: list[str], path: str | None = None, ip4: list[str] | None = None,
        ip6: list[str] | None = None, force: bool = False) -> int:
    from ..engine import expand_phase

    phases = expand_phase(phase)  # a bad phase is a usage error before anything runs
    if not names:
        raise UsageError("run: give at least one jail name")
    if len(names) > 1 and (path or ip4 or ip6):
        raise UsageError("run: --path/--ip4/--ip6 describe one jail; give one jail name with them")
    code = ExitCode.OK
    down = phases[0] not in UP_PHASES
    if not any(app.plugins.ordered(f"jailhooks_{p}") for p in phases):
        # no plugin acts at this point (prestop, with the built-ins): nothing to
        # resolve and no command to run; a bad name is still refused
        from ..engine import checked_name

        for name in names:
            checked_name(name)
        return int(code)
    registry_error = app.registry_or_stand_in() if down else None
    engine = app.engine
    if "prestart" in phases:
        # jail(8) runs prestart before the jail exists: one listing of the running
        # jails answers both "does it run?" and the address check (no jls -j NAME)
        app.host.remember_jails = True
    for name in names:
        facts_errors: list = []
        try:
            if app.host.remember_jails:
                app.host.jails()  # the listing that facts and the address check answer from
            jail = engine.resolve(name, path, ip4, ip6, errors=facts_errors if down else None)
            require_known(app, jail, up=not down)
            if phase == "destroy" and jail.jid is not None and not force:
                # destroy frees the UID block and FIB for the next jail while this one still runs
                raise UsageError(f"jail {jail.name} is running (jid {jail.jid}): stop it before destroy, "
                                 "or use --force")
            outcome = compiled(app, phase, jail, names, (path, ip4, ip6, force))
        except JailhooksError as exc:
            app.warn(f"{safe_name(name)}: {exc}")
            logbook.log("err", f"{safe_name(name)}: {phase}: refused: {exc}")
            code = code or exc.exit_code
            continue
        outcome.failures[:0] = facts_errors
        if registry_error is not None:
            from ..engine import Failure

            outcome.failures.insert(0, Failure("registry", phase, f"{registry_error}; the jail's lease was not "
                                               "updated (the rest of the phase ran)", int(registry_error.exit_code)))
        report(app, outcome)
        if not outcome.ok and not code:
            code = outcome.exit_code
    return int(code)


def compiled(app: App, phase: str, jail: Jail, names: list[str], options: tuple) -> Outcome:
    """Run PHASE; a prestart of one jail, as a jail manager runs it, is
    recorded and compiled into the jail's plan for the next one to replay
    (plan.py, replay.py).  A start that proved the jail's anchor also keeps
    how pf prints it, which other jails' replays check it against."""
    from .. import plan

    if phase == "destroy" and not app.dry_run:
        plan.forget(app.settings.state_dir, jail.name)  # its lease goes: a plan would never hold again
    if phase not in ("prestart", "start") or app.dry_run:
        return app.engine.run(phase, jail)
    import time

    from ..host import Recording

    started = time.time()
    app.host.recording = Recording()
    try:
        outcome = app.engine.run(phase, jail)
    finally:
        recording, app.host.recording = app.host.recording, None
    if not outcome.ok:
        plan.forget(app.settings.state_dir, jail.name)
        return outcome
    plan.keep_proven_listing(app.settings, jail.name, recording.reads)
    if phase == "prestart" and len(names) == 1 and not any(options):
        why = plan.compile_plan(app, jail, recording, outcome, started)
        if why and app.verbose:
            app.warn(f"{jail.name}: prestart: not compiled: {why}")
    return outcome


def hook(app: App, manager: str, args: list[str]) -> int:
    """``jailhooks hook iocage|pot ...``: what those managers run, turned into
    ``run`` (managers/hooks.py reads their arguments and environment)."""
    import os

    from ..managers import hooks

    def run_phase(phase: str, names: list[str], ip4: list[str] | None, ip6: list[str] | None) -> int:
        return run(app, phase, names, None, ip4, ip6)

    return hooks.iocage(run_phase, args) if manager == "iocage" else hooks.pot(run_phase, args, os.environ)


def require_known(app: App, jail: Jail, up: bool) -> None:
    """Refuse a jail jailhooks knows nothing of, before touching anything: on
    the way up it needs facts (jls, its manager, [jail.NAME] or --path/--ip4),
    else a typo would get a lease and an anchor; otherwise facts or a lease."""
    from ..errors import UnknownJail

    if jail.source != "none" or not up and app.registry.get(jail.name) is not None:
        return
    key = f'"{jail.name}"' if "." in jail.name else jail.name  # TOML: a dotted key would be a nested table
    raise UnknownJail(f"unknown jail {jail.name}: not running, not in its manager's files nor in [jail.{key}]"
                      + (" (or give --path/--ip4)" if up else ", and it holds no lease"))


def safe_name(name: str) -> str:
    """The name as typed if it is a valid jail name, else quoted (no raw newlines in errors)."""
    from .. import validate

    try:
        return validate.jail_name(name)
    except ValueError:
        return repr(name)


def report(app: App, outcome: Outcome) -> None:
    for phase, plugin, text in outcome.notes:
        # a dry run changed nothing: its notes say what the run would have done
        app.say(f"{outcome.jail}: {phase}: {plugin}: {'(dry run, not done) ' if app.dry_run else ''}{text}")
        if not app.dry_run:
            logbook.log("info", f"{outcome.jail}: {phase}: {plugin}: {text}")
    for f in outcome.failures:
        app.warn(f"{outcome.jail}: {f.phase}: {f.plugin}: {f.message}")
        logbook.log("err", f"{outcome.jail}: {f.phase}: {f.plugin}: {f.message}")
    for what in outcome.undone:
        what = validate.escaped(what)
        app.warn(f"{outcome.jail}: undone: {what}")
        logbook.log("warning", f"{outcome.jail}: undone: {what}")
