"""What each command does, apart from how its arguments are parsed.

Both front ends call these: the click CLI (cli.py) and the fast hook path
(main.py), which parses ``jailhooks run ...`` without importing click.
Each function returns an exit code; errors are JailhooksError subclasses,
turned into one line and an exit code by main.py.
"""
from __future__ import annotations

import sys
from typing import Any, TextIO

from .config import ConfigError, build_settings, plugin_list, read_toml
from .context import UP_PHASES, Context, Jail
from .engine import Engine, Outcome
from .errors import DataError, ExitCode, JailhooksError, UsageError
from .host import Host, make_host
from .pluginmanager import Plugins, make_plugins

class App:
    """The loaded configuration, plugins and host of one invocation."""

    def __init__(self, settings: Any, plugins: Plugins, host: Host, dry_run: bool = False, quiet: bool = False,
                 verbose: int = 0, out: TextIO | None = None, err: TextIO | None = None) -> None:
        self.settings = settings
        self.plugins = plugins
        self.host = host
        self.dry_run = dry_run
        self.quiet = quiet
        self.verbose = verbose
        self.out = out or sys.stdout
        self.err = err or sys.stderr
        self._registry: Any = None

    @property
    def registry(self):
        if self._registry is None:
            from .registry import open_registry

            self._registry = open_registry(self.settings, self.dry_run)
        return self._registry

    @property
    def engine(self) -> Engine:
        return Engine(self.settings, self.plugins, self.host, self.registry, self.dry_run, self.verbose)

    def context(self, jail: Jail, phase: str) -> Context:
        return self.engine.context(jail, phase)

    def say(self, line: str) -> None:
        if not self.quiet:
            self.out.write(line + "\n")

    def warn(self, line: str) -> None:
        self.err.write(f"jailhooks: {line}\n")

    def close(self) -> None:
        if self._registry is not None:
            self._registry.close()


def setup_logging(verbose: int) -> None:
    """With -v, show the "jailhooks" logger (``ctx.log``) on stderr.  The logging
    module costs milliseconds to import, so the hook path does not set it up
    otherwise (warnings still reach stderr through logging's last resort)."""
    if not verbose:
        return
    import logging

    log = logging.getLogger("jailhooks")
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(logging.Formatter("jailhooks: %(message)s"))
    log.addHandler(handler)
    log.setLevel(logging.DEBUG)


def to_syslog(priority: str, line: str) -> None:
    """On FreeBSD every run leaves its summary with syslogd(8) (facility daemon),
    as a tool that changes the firewall should; the C-level syslog module is cheap."""
    if sys.platform.startswith("freebsd"):
        import syslog

        syslog.openlog("jailhooks", syslog.LOG_PID, syslog.LOG_DAEMON)
        syslog.syslog(getattr(syslog, priority), line)


def state_dir_of(raw: dict) -> str | None:
    """[host] state_dir before full validation (plugins load first); None if bad."""
    from .config import absolute_path, default_state_dir

    host = raw.get("host")
    value = host.get("state_dir") if isinstance(host, dict) else None
    try:
        return absolute_path(value) if value is not None else default_state_dir()
    except ValueError:
        return None


def load_app(config: str | None = None, dry_run: bool = False, quiet: bool = False,
             autoload: bool = True, verbose: int = 0, strict: bool = True) -> App:
    raw, source = read_toml(config)
    plugins = make_plugins(plugin_list(raw, source), autoload=autoload,
                           cache_dir=None if dry_run else state_dir_of(raw), strict=strict)
    sections = []
    for plugin, secs in plugins.collect("jailhooks_config_sections"):
        sections.extend(secs)
    settings = build_settings(raw, source, sections)
    problems: list[str] = []
    for plugin, found in plugins.collect("jailhooks_check_config", settings=settings):
        problems.extend(found)
    if problems:
        raise ConfigError(problems, source)
    host = make_host(settings.host, dry_run=dry_run)
    return App(settings, plugins, host, dry_run=dry_run, quiet=quiet, verbose=verbose)


# -- run ----------------------------------------------------------------------------

def run(app: App, phase: str, names: list[str], path: str | None = None, ip4: list[str] | None = None,
        ip6: list[str] | None = None) -> int:
    from .engine import expand_phase

    expand_phase(phase)  # a bad phase is a usage error before anything runs
    if not names:
        raise UsageError("run: give at least one jail name")
    if len(names) > 1 and (path or ip4 or ip6):
        raise UsageError("run: --path/--ip4/--ip6 describe one jail; give one jail name with them")
    engine = app.engine
    code = ExitCode.OK
    down = expand_phase(phase)[0] not in UP_PHASES
    for name in names:
        facts_errors: list = []
        try:
            jail = engine.resolve(name, path, ip4, ip6, errors=facts_errors if down else None)
            outcome = engine.run(phase, jail)
        except JailhooksError as exc:
            app.warn(f"{safe_name(name)}: {exc}")
            code = code or exc.exit_code
            continue
        outcome.failures[:0] = facts_errors
        report(app, outcome)
        if not outcome.ok and not code:
            code = outcome.exit_code
    return int(code)


def safe_name(name: str) -> str:
    """The name as typed if it is a valid jail name, else quoted (no raw newlines in errors)."""
    from . import validate

    try:
        return validate.jail_name(name)
    except ValueError:
        return repr(name)


def report(app: App, outcome: Outcome) -> None:
    for phase, plugin, text in outcome.notes:
        app.say(f"{outcome.jail}: {phase}: {plugin}: {text}")
        if not app.dry_run:
            to_syslog("LOG_INFO", f"{outcome.jail}: {phase}: {plugin}: {text}")
    for f in outcome.failures:
        app.warn(f"{outcome.jail}: {f.phase}: {f.plugin}: {f.message}")
        to_syslog("LOG_ERR", f"{outcome.jail}: {f.phase}: {f.plugin}: {f.message}")
    for what in outcome.undone:
        app.warn(f"{outcome.jail}: undone: {what}")
        to_syslog("LOG_WARNING", f"{outcome.jail}: undone: {what}")


# -- status -------------------------------------------------------------------------

def known_jails(app: App) -> dict[str, Jail]:
    """Running jails, jails with a lease, and jails in the config."""
    found: dict[str, Jail] = {}
    for j in app.host.jails():
        found[j["name"]] = Jail(j["name"], j["path"], tuple(j["ip4"]), tuple(j["ip6"]), j["hostname"], j["jid"], "jls")
    names = set(app.settings.jails) | {lease.jail for lease in app.registry.leases()}
    for name in sorted(names - set(found)):
        found[name] = app.engine.resolve(name)
    return dict(sorted(found.items()))


def status_records(app: App, name: str | None) -> list[dict[str, Any]]:
    jails = known_jails(app)
    if name is not None:
        jails = {name: jails.get(name) or app.engine.resolve(name)}
    records = []
    for jail in jails.values():
        rec: dict[str, Any] = {"jail": jail.name, "running": jail.jid is not None, "jid": jail.jid,
                               "path": jail.path, "ip4": list(jail.ip4), "ip6": list(jail.ip6)}
        ctx = app.context(jail, "status")
        for plugin, extra in app.plugins.collect("jailhooks_status", ctx=ctx):
            rec.update(extra)
        records.append(rec)
    return records


def status(app: App, name: str | None, as_json: bool) -> int:
    records = status_records(app, name)
    if as_json:
        import json

        app.out.write(json.dumps(records, indent=2) + "\n")
        return 0
    if not records:
        app.out.write("no jails known\n")
        return 0
    header = f"{'JAIL':<16} {'JID':>4} {'UIDS':<21} {'FIB':>4} {'ANCHOR':<28} RULES"
    app.out.write(header + "\n")
    for r in records:
        uids = "-" if not r.get("uid_range") else f"{r['uid_range'][0]}-{r['uid_range'][1]}"
        anchor = r.get("anchor", "-") + ("" if r.get("anchor_loaded") else " (not loaded)")
        app.out.write(f"{r['jail']:<16} {r['jid'] if r['jid'] is not None else '-':>4} {uids:<21} "
                      f"{r.get('fib') if r.get('fib') is not None else '-':>4} {anchor:<28} {r.get('rules', '-')}\n")
    return 0


# -- render, sync, check, release, plugins ---------------------------------------------

def render(app: App, name: str, path: str | None, ip4: list[str] | None, ip6: list[str] | None) -> int:
    from .plugins.pf import render as render_anchor

    jail = app.engine.resolve(name, path, ip4, ip6)
    app.out.write(render_anchor(app.context(jail, "render")))
    return 0


def sync(app: App) -> int:
    engine = app.engine
    code = 0
    running = app.host.jails()
    for j in running:
        jail = Jail(j["name"], j["path"], tuple(j["ip4"]), tuple(j["ip6"]), j["hostname"], j["jid"], "jls")
        outcome = Outcome(jail.name, ("sync",))
        with engine.jail_lock(jail.name):
            ctx = engine.context(jail, "sync")
            for impl in app.plugins.ordered("jailhooks_sync"):
                try:
                    engine._call(ctx, impl)
                except Exception as exc:
                    engine._fail(outcome, "sync", impl.plugin_name, exc)
            engine._notes(outcome, "sync", ctx)
        report(app, outcome)
        code = code or outcome.exit_code
    for plugin, lines in app.plugins.collect("jailhooks_cleanup", settings=app.settings, host=app.host,
                                             running=[j["name"] for j in running], dry_run=app.dry_run):
        for line in lines:
            app.say(f"sync: {plugin}: {line}")
    app.say(f"sync: {len(running)} running jail(s)")
    return int(code)


def check(app: App, name: str | None) -> int:
    jail = app.engine.resolve(name) if name else None
    findings: list[tuple[str, str, str]] = [("ok", "config", f"{app.settings.source}: valid")]
    problems = app.registry.check()
    findings += [("error", "registry", p) for p in problems] or [("ok", "registry", "integrity check passed")]
    for plugin, found in app.plugins.collect("jailhooks_check", settings=app.settings, host=app.host,
                                             registry=app.registry, jail=jail):
        findings += [(level, plugin, msg) for level, msg in found]
    for level, who, msg in findings:
        line = f"{level:<7} {who}: {msg}"
        (app.err if level == "error" else app.out).write(line + "\n")
    return int(ExitCode.FAILED) if any(level == "error" for level, _, _ in findings) else 0


def release(app: App, name: str, force: bool) -> int:
    from . import validate

    try:
        validate.jail_name(name)
    except ValueError as exc:
        raise DataError(str(exc)) from None
    with app.engine.jail_lock(name):
        if app.host.jail(name) is not None and not force:
            raise UsageError(f"jail {name} is running: its UIDs would be handed to another jail "
                             "(stop it first, or --force)")
        lease = app.registry.release(name)
    if lease is None:
        app.warn(f"{name}: no lease")
        return int(ExitCode.DATAERR)
    app.say(f"{name}: released UIDs {lease.uid_first}-{lease.uid_last}"
            + (f" and FIB {lease.fib}" if lease.fib is not None else ""))
    return 0


def install(app: App, manager: str, jail: str | None, apply: bool = False) -> int:
    """Print the configuration MANAGER needs; with APPLY, add the lines that
    only need adding (jail.conf, ezjail's rc.conf), keeping a backup."""
    from . import integrations
    from .managers import iocage

    if apply:
        sec = app.settings.section("managers")
        if manager == "jail.conf":
            path, edit = sec["jail_conf"], integrations.apply_jail_conf
        elif manager == "ezjail":
            path, edit = sec["rc_conf"], integrations.apply_rc_conf
        elif manager == "bastille" and jail is not None:
            import os

            from . import validate

            try:
                validate.jail_name(jail)
            except ValueError as exc:
                raise DataError(str(exc)) from None
            # Bastille runs jail(8) on this file: lines outside the section apply to the jail
            path, edit = os.path.join(sec["bastille_jails"], jail, "jail.conf"), integrations.apply_jail_conf
        else:
            raise UsageError(f"install --apply: {manager} keeps its settings itself; run the printed commands "
                             "(they go through its own tool, which validates them)" if manager != "bastille"
                             else "install bastille --apply needs the jail's name")
        if app.dry_run:
            app.say(f"would add to {path}:")
            app.out.write(integrations.render(manager, None, None, []))
            return 0
        try:
            added, backup = edit(path)
        except FileNotFoundError:
            raise DataError(f"{path}: no such file") from None
        if not added:
            app.say(f"{path}: jailhooks lines already there; nothing changed")
        else:
            app.say(f"{path}: added {len(added)} line(s); the old file is {backup}")
            for line in added:
                app.say(f"  {line}")
        if jail is None:
            return 0

    fib, families, hooks = None, [], None
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
                    hooks = {k: v for k, v in json.load(fh).items() if k.startswith("exec_")}
            except (OSError, ValueError):
                hooks = None
    app.out.write(integrations.render(manager, jail, fib, families, hooks))
    return 0


def registry_migrate(app: App) -> int:
    reg = app.registry
    if not hasattr(reg, "migrate"):
        app.say("registry: SQLite migrates itself (it belongs to this host alone)")
        return 0
    before, after = reg.migrate()
    app.say(f"registry {reg.shown}: schema {before} -> {after}" if before != after
            else f"registry {reg.shown}: schema {after}, up to date")
    return 0


def registry_export(app: App) -> int:
    import json

    app.out.write(json.dumps({"jailhooks_registry": 1, "leases": app.registry.export()}, indent=2) + "\n")
    return 0


def registry_import(app: App, text: str, source: str) -> int:
    import json

    try:
        doc = json.loads(text)
        leases = doc["leases"] if isinstance(doc, dict) else None
        if not isinstance(leases, list):
            raise ValueError("no \"leases\" list")
    except (ValueError, KeyError, TypeError) as exc:
        raise DataError(f"{source}: not a jailhooks registry export ({exc})") from None
    added, same = app.registry.import_leases(leases)
    app.say(f"registry: {added} lease(s) imported, {same} already there")
    return 0


def lease_move(app: App, jail: str, to_host: str) -> int:
    from . import validate
    from .config import host_label

    try:
        validate.jail_name(jail)
        host_label(to_host)
    except ValueError as exc:
        raise DataError(str(exc)) from None
    if not to_host:
        raise UsageError("lease move: --to HOST is required")
    lease = app.registry.move(jail, to_host)
    app.say(f"{jail}: lease (UIDs {lease.uid_first}-{lease.uid_last}) now held by {to_host}; its FIB stays behind")
    return 0


def plugins_report(app: App, as_json: bool) -> int:
    """Every plugin, broken ones included (with their error; exit 78 then)."""
    rows = [{"name": i.name, "source": i.source, "module": i.module, "hooks": i.hooks, "error": i.error}
            for i in app.plugins.infos]
    if as_json:
        import json

        app.out.write(json.dumps(rows, indent=2) + "\n")
    else:
        for r in rows:
            detail = f"BROKEN: {r['error']}" if r["error"] else ", ".join(r["hooks"])
            app.out.write(f"{r['name']:<14} {r['source']}\n    {detail}\n")
    return int(ExitCode.CONFIG) if any(r["error"] for r in rows) else 0
