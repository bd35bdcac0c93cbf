"""``jailhooks install MANAGER [JAIL] [--apply]``: what a jail manager needs
so that jailhooks runs at its starts and stops, with the knowledge of each
manager in managers/install.py."""
from __future__ import annotations

from ..app import App
from ..errors import ExitCode, DataError, UsageError


def install(app: App, manager: str, jail: str | None, apply: bool = False, target: str | None = None) -> int:
    """Print the configuration MANAGER needs; with APPLY, add the lines that
    only need adding (jail.conf, ezjail's rc.conf, or TARGET), keeping a backup."""
    from ..managers import install as integrations
    from ..config import default_config_path
    from ..managers import iocage

    source = app.settings.source
    hooks = integrations.phases({p: [name for name, _ in app.plugins.callers(f"jailhooks_{p}")]
                                 for p in integrations.ORDER})
    try:
        program = integrations.command(source if source.startswith("/") and source != default_config_path() else None)
    except ValueError as exc:
        raise UsageError(f"install: {exc}") from None
    if target is not None and not apply:
        raise UsageError("install: --file goes with --apply")
    if apply:
        sec = app.settings.section("managers")
        if manager == "jail.conf":
            path, edit = target or sec["jail_conf"], integrations.apply_jail_conf
        elif manager == "ezjail":
            path, edit = target or sec["rc_conf"], integrations.apply_rc_conf
        elif manager == "bastille" and jail is not None:
            import os

            from .. import validate

            try:
                validate.jail_name(jail)
            except ValueError as exc:
                raise DataError(str(exc)) from None
            # Bastille runs jail(8) on this file: lines outside the section apply to the jail
            path = target or os.path.join(sec["bastille_jails"], jail, "jail.conf")
            edit = integrations.apply_jail_conf
        else:
            raise UsageError(f"install --apply: {manager} keeps its settings itself; run the printed commands "
                             "(they go through its own tool, which validates them)" if manager != "bastille"
                             else "install bastille --apply needs the jail's name")
        if app.dry_run:
            app.say(f"would add to {path}:")
            app.out.write(integrations.render(manager, None, None, [], program=program, hooks=hooks))
            return 0
        try:
            added, backup = edit(path, program, hooks) if edit is integrations.apply_jail_conf else edit(path, program)
        except FileNotFoundError:
            raise DataError(f"{path}: no such file") from None
        if not added:
            app.say(f"{path}: jailhooks lines already there; nothing changed")
        else:
            app.changed(f"{path}: added {len(added)} line(s); the old file is {backup}")
            for line in added:  # what changed, not the whole block again
                app.say(f"  {line}")
        unhooked = _warn_replaced_hooks(app, path, hooks) if edit is integrations.apply_jail_conf else 0
        if unhooked:  # the file is edited, but the job is not done: say so in the exit status
            app.warn(f"install: {unhooked} jail(s) in {path} would still start without jailhooks; "
                     "change their own exec lines to += and run install again")
            return int(ExitCode.FAILED)
        if jail is None:
            return 0

    fib, families, iocage_hooks = None, [], None
    if jail is not None:
        facts = app.engine.resolve(jail)
        lease = app.registry.get(jail)
        fib = lease.fib if lease else None
        if app.settings.for_jail("saddr", jail).get("saddrsel_off", True):
            families = [f for f, a in (("ip4", facts.ip4), ("ip6", facts.ip6)) if a]
        if manager == "iocage":
            import json
            import os

            conf = os.path.join(app.settings.section("managers")["iocroot"], "jails", iocage.iocage_name(jail),
                                "config.json")
            try:
                with open(conf, encoding="utf-8") as fh:
                    iocage_hooks = {k: v for k, v in json.load(fh).items() if k.startswith("exec_")}
            except (OSError, ValueError):
                iocage_hooks = None
    app.out.write(integrations.render(manager, jail, fib, families, iocage_hooks, program=program, hooks=hooks))
    return 0


def _warn_replaced_hooks(app: App, path: str, hooks: tuple[str, ...]) -> int:
    """Jails whose own ``exec.PHASE = ...`` replaces the global line: they
    would start without their firewall; say so now, not at the next check.
    Returns how many there are.  Lines of phases no plugin works at any more
    (an older jailhooks ran poststart and prestop too) are pointed out."""
    from ..managers import jailconf

    def runs(cmd: str, phase: str) -> bool:
        return f"jailhooks run {phase} " in cmd or f" run {phase} -- " in cmd

    found, needless = 0, set()
    for name in jailconf.jail_names(path):
        lines = jailconf.exec_hooks(path, name)
        needless.update(p for p in ("created", "poststart", "prestop") if p not in hooks
                        and any(runs(cmd, p) for cmd in lines.get(f"exec.{p}", [])))
        for phase in hooks:
            if not any(runs(cmd, phase) for cmd in lines.get(f"exec.{phase}", [])):
                app.warn(f"{path}: jail {name}: its own 'exec.{phase} = ...' replaces the jailhooks line: it "
                         "would run without its firewall; use += there")
                found += 1
                break
    if needless:
        app.say(f"{path}: the jailhooks lines of exec.{', exec.'.join(sorted(needless))} are not needed any more "
                "(one process per start; the jails' parameters instead): remove them")
    return found
