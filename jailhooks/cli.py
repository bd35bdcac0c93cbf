"""The click command line: parsing and help only; the work is in commands/.

``jailhooks run`` normally never reaches this module (main.py parses it
without click); it is defined here too so that --help, usage errors and
unusual spellings behave the same.
"""
from __future__ import annotations

import sys
from dataclasses import dataclass

import click

from . import __version__
from . import app as app_mod
from .commands import admin, install as install_cmd, run as run_cmd
from .config import COMMANDS
from .context import COMPOSITE, PHASES
from .errors import ConfigError, ExitCode
from .managers.install import MANAGERS


@dataclass
class Options:
    config: str | None
    dry_run: bool
    verbose: int
    quiet: bool

    def app(self, strict: bool = True, missing_ok: bool = False) -> app_mod.App:
        app_mod.setup_logging(self.verbose)
        return app_mod.load_app(self.config, dry_run=self.dry_run, quiet=self.quiet, verbose=self.verbose,
                                strict=strict, missing_ok=missing_ok)


def call(opts: Options, fn, *args, strict: bool = True) -> int:
    """Load the app, run one command (commands/), always close the registry."""
    app = opts.app(strict)
    try:
        return fn(app, *args)
    finally:
        app.close()


def _complete_jails(ctx: click.Context, param: click.Parameter, incomplete: str) -> list:
    """Shell completion of jail names: the config's jails and the running
    ones (jls), read quietly; nothing when the config cannot be read."""
    from click.shell_completion import CompletionItem

    try:
        app = app_mod.load_app(ctx.find_root().params.get("config"), quiet=True)
        try:
            names = set(app.settings.jails) | {j["name"] for j in app.host.jails()}
        finally:
            app.close()
    except Exception:
        return []
    return [CompletionItem(name) for name in sorted(names) if name.startswith(incomplete)]


def _split(values: tuple[str, ...]) -> list[str] | None:
    out = [v for value in values for v in value.split(",") if v]
    return out or None


jail_facts = [
    click.option("--path", metavar="DIR", help="The jail's root directory (jail.conf: ${path})."),
    click.option("--ip4", multiple=True, metavar="ADDR", help="An IPv4 address of the jail (repeat, or a,b)."),
    click.option("--ip6", multiple=True, metavar="ADDR", help="An IPv6 address of the jail (repeat, or a,b)."),
]


def with_facts(fn):
    for option in reversed(jail_facts):
        fn = option(fn)
    return fn


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.option("--config", metavar="PATH", help="Config file (default: $JAILHOOKS_CONFIG, else PREFIX/etc/jailhooks.toml).")
@click.option("--dry-run", is_flag=True, help="Print the commands that would change something; change nothing.")
@click.option("-v", "--verbose", count=True, help="More detail, tracebacks for internal errors.")
@click.option("-q", "--quiet", is_flag=True, help="Only errors.")
@click.version_option(__version__, prog_name="jailhooks")
@click.pass_context
def cli(ctx: click.Context, config, dry_run, verbose, quiet):
    """Per-jail outbound firewalling for FreeBSD jail hosts.

    Exit status follows sysexits(3): 0 ok, 1 a phase failed, 64 usage,
    65 bad data, 68 unknown jail, 69 pool exhausted, 70 internal error, 75 lock timeout,
    77 permission, 78 config or plugin error.
    """
    ctx.obj = Options(config, dry_run, verbose, quiet)


@cli.command()
@click.argument("phase", type=click.Choice(PHASES + tuple(COMPOSITE)), metavar="PHASE")
@click.argument("jails", nargs=-1, required=True, shell_complete=_complete_jails)
@with_facts
@click.option("--force", is_flag=True, help="destroy: even if the jail is running.")
@click.pass_obj
def run(opts: Options, phase, jails, path, ip4, ip6, force):
    """Run PHASE for each JAIL: create, prestart, created, poststart, prestop,
    poststop, destroy, start (prestart + created + poststart) or stop
    (prestop + poststop).

    Put -- before the jail names when a name could look like an option, as the
    lines jailhooks prints do.

    \b
    Examples:
      jailhooks run start -- web
      jailhooks run prestart --path /jails/app --ip4 192.0.2.40 -- app
      jailhooks run destroy --force -- old
    """
    return call(opts, run_cmd.run, phase, list(jails), path, _split(ip4), _split(ip6), force)


@cli.command()
@click.argument("jail", required=False, shell_complete=_complete_jails)
@click.option("--json", "as_json", is_flag=True,
              help='A versioned JSON document: {"__version": "1", "jailhooks-status": {"jail": [...]}}.')
@click.option("-H", "tabs", is_flag=True, help="For scripts: no header, fields separated by one tab.")
@click.option("--json-array", "array", is_flag=True, hidden=True, help="The flat array of 0.1 (deprecated).")
@click.pass_obj
def status(opts: Options, jail, as_json, tabs, array):
    """Leases, FIBs and anchors of every known jail, or of JAIL.

    \b
    Examples:
      jailhooks status
      jailhooks status --json web
      jailhooks status -H | while IFS="$(printf '\\t')" read -r name jid uids fib anchor loaded rules; do ...; done
    """
    return _json_even_on_config_error(opts, "jailhooks-status", as_json,
                                      lambda: call(opts, admin.status, jail, as_json, tabs, array))


def _json_even_on_config_error(opts: Options, container: str, as_json: bool, run) -> int:
    """With --json a monitor always gets a JSON document on stdout: a config
    that cannot be loaded is one finding (the exit status stays 78 and the
    one-line error still goes to stderr)."""
    try:
        return run()
    except ConfigError as exc:
        if as_json:
            import json

            findings = [{"level": "error", "source": "config", "message": f"{exc.source}: {p}" if exc.source else p}
                        for p in exc.problems]
            doc = {"ok": False, "finding": findings} if container == "jailhooks-check" else \
                {"ok": False, "jail": [], "finding": findings}
            sys.stdout.write(json.dumps({"__version": admin.STATUS_VERSION, container: doc}, indent=2) + "\n")
        raise


@cli.command()
@click.argument("jail", shell_complete=_complete_jails)
@with_facts
@click.pass_obj
def render(opts: Options, jail, path, ip4, ip6):
    """Print the exact anchor text that start would load; change nothing.

    \b
    Example:
      jailhooks render web | pfctl -n -a jailhooks/web -f -
    """
    return call(opts, admin.render, jail, path, _split(ip4), _split(ip6))


def _packet(fn):
    """JAIL PROTO DEST[:PORT] [--in] [--from ADDR] [--uid N]: one packet of a
    jail, as explain and sim send take it."""
    for decorator in reversed((
            click.argument("jail", shell_complete=_complete_jails),
            click.argument("proto", type=click.Choice(["tcp", "udp", "icmp", "icmp6"])),
            click.argument("dest", metavar="DEST[:PORT]"),
            click.option("--in", "inbound", is_flag=True,
                         help="A packet to the jail (DEST: its address or NAT address)."),
            click.option("--from", "peer", metavar="ADDR", help="--in: the sender (default: a documentation address)."),
            click.option("--uid", type=click.IntRange(0, 4294967294),
                         help="The sending socket's UID (default: 0, root)."))):
        fn = decorator(fn)
    return fn


@cli.command()
@_packet
@click.option("--user", metavar="NAME", help="The sending socket's user, from the jail's etc/passwd.")
@click.option("--on", "iface", metavar="IF", help="The interface the packet crosses (default: the policy's).")
@click.option("--rendered", is_flag=True, help="Ask what start would load, not the live host.")
@click.option("--json", "as_json", is_flag=True, help="One JSON document.")
@click.pass_obj
def explain(opts: Options, jail, proto, dest, inbound, peer, uid, user, iface, rendered, as_json):
    """What the firewall does with one packet of JAIL, and the rule that decides.

    \b
    Examples:
      jailhooks explain web tcp 198.51.100.1:443
      jailhooks explain web tcp 198.51.100.1:25 --user alice
      jailhooks explain web tcp 192.0.2.10:80 --in --from 203.0.113.9
      jailhooks explain mail tcp 198.51.100.1:25 --rendered --json
    """
    if uid is not None and user is not None:
        raise click.UsageError("--uid and --user exclude each other")
    return call(opts, admin.explain, jail, proto, dest, inbound, peer, uid, user, iface, rendered, as_json)


@cli.command()
@click.pass_obj
def sync(opts: Options):
    """Bring every running jail to its desired state; remove orphan anchors.

    \b
    Example (after pf was restarted; rc.d/jailhooks does it at boot):
      jailhooks sync
    """
    return call(opts, admin.sync)


@cli.command()
@click.argument("jail", required=False, shell_complete=_complete_jails)
@click.option("--json", "as_json", is_flag=True,
              help='A versioned JSON document: {"__version": "1", "jailhooks-check": {"ok": ..., "finding": [...]}}.')
@click.pass_obj
def check(opts: Options, jail, as_json):
    """Check the config, the registry, pf's hooks, that every running jail's
    policy is enforced, and (with JAIL) one jail.

    Exit status 1 if anything is wrong.  With -q only the problems are
    printed, so from cron (which mails what a job prints) this mails the
    problems and nothing when all is well.

    \b
    Example (a crontab line):
      */15 * * * *  /usr/local/bin/jailhooks -q check
    """
    return _json_even_on_config_error(opts, "jailhooks-check", as_json,
                                      lambda: call(opts, admin.check, jail, as_json))


@cli.command()
@click.argument("jail", shell_complete=_complete_jails)
@click.option("--force", is_flag=True, help="Even if the jail is running.")
@click.pass_obj
def release(opts: Options, jail, force):
    """End JAIL's lease by hand: its UID block and FIB become free.

    \b
    Example:
      jailhooks release old
    """
    return call(opts, admin.release, jail, force)


@cli.group()
def hook():
    """The hook of the managers that cannot pass a jail's name themselves."""


@hook.command("iocage", context_settings={"ignore_unknown_options": True, "allow_interspersed_args": False})
@click.argument("phase")
@click.argument("jail", shell_complete=_complete_jails)
@click.argument("previous", nargs=-1, type=click.UNPROCESSED)
@click.pass_obj
def hook_iocage(opts: Options, phase, jail, previous):
    """iocage's exec_PHASE: run PHASE for JAIL (ioc-NAME), then the jail's
    PREVIOUS hook: on the way up only if jailhooks succeeded.

    \b
    Example (what `jailhooks install iocage web` prints):
      iocage set exec_prestart="/usr/local/bin/jailhooks hook iocage prestart ioc-web" web
    """
    from .commands.run import hook as run_hook

    return call(opts, run_hook, "iocage", [phase, jail, *previous])


@hook.command("pot")
@click.argument("phase")
@click.pass_obj
def hook_pot(opts: Options, phase):
    """pot's PHASE hook: the pot's name and addresses come from _POT_NAME,
    _POT_IP and _POT_IP_LIST.  pot copies a one-line script calling this.

    \b
    Example (the script `jailhooks install pot web` makes for prestart):
      exec /usr/local/bin/jailhooks hook pot prestart
    """
    from .commands.run import hook as run_hook

    return call(opts, run_hook, "pot", [phase])


@cli.command()
@click.argument("manager", type=click.Choice(MANAGERS))
@click.argument("jail", required=False, shell_complete=_complete_jails)
@click.option("--apply", is_flag=True, help="Add the lines to jail.conf / rc.conf (ezjail), keeping a backup.")
@click.option("--file", "target", metavar="PATH",
              help="With --apply: the file to edit (default: [managers] jail_conf, rc_conf, or the Bastille jail's).")
@click.pass_obj
def install(opts: Options, manager, jail, apply, target):
    """Print what MANAGER's configuration needs so that jailhooks runs at every
    start and stop (with JAIL: its FIB and source-address settings too).  The
    lines carry --config when a config other than the default is in use.

    \b
    Examples:
      jailhooks install jail.conf --apply
      jailhooks install bastille web --apply
      jailhooks install iocage web
    """
    return call(opts, install_cmd.install, manager, jail, apply, target)


@cli.command()
@click.option("--json", "as_json", is_flag=True,
              help="A JSON array: name, source, module, hooks and, for a broken plugin, its error.")
@click.pass_obj
def plugins(opts: Options, as_json):
    """List the loaded plugins, where each came from, and its hooks.

    \b
    Example:
      jailhooks plugins --json
    """
    return call(opts, admin.plugins_report, as_json, strict=False)


@click.command()
@_packet
@click.pass_obj
def sim_send(opts: Options, jail, proto, dest, inbound, peer, uid):
    """Send one packet of JAIL through the simulated host's live rules."""
    return call(opts, admin.sim_send, jail, proto, dest, inbound, peer, uid)


@cli.command(context_settings={"ignore_unknown_options": True, "allow_interspersed_args": False})
@click.argument("tool", type=click.Choice([*(c for c in COMMANDS if c not in ("tcpdump", "tail")), "send"]))  # those two: log -f
@click.argument("args", nargs=-1, type=click.UNPROCESSED)
@click.pass_obj
def sim(opts: Options, tool, args):
    """Run TOOL on the simulated host (not on FreeBSD); or `sim send JAIL
    PROTO DEST[:PORT] [--uid N] [--in --from ADDR]`: one packet of JAIL
    through the simulated host's live rules (its verdict and the rule that
    decides; a rule that logs appends the packet to the simulated pflog).

    \b
    Examples (create a jail, as jail(8) would; then web tries to send mail):
      jailhooks sim jail -c name=web path=/usr/jails/web ip4.addr=192.0.2.10 persist
      jailhooks sim send web tcp 198.51.100.1:25 --uid 1005
    """
    import sys

    if tool == "send":
        return sim_send.main(list(args), prog_name="jailhooks sim send", standalone_mode=False, obj=opts)
    app = opts.app(missing_ok=True)
    if app.host.mode.split(",")[0] != "simulated":
        raise click.UsageError("sim only drives the simulated host ([host] mode = \"simulated\", or auto off FreeBSD)")
    res = app.host.run(tool, *args, check=False, mutating=True)
    sys.stdout.write(res.stdout)
    sys.stderr.write(res.stderr)
    return res.returncode


@cli.command("log")
@click.argument("jails", nargs=-1, shell_complete=_complete_jails)
@click.option("--since", metavar="TIME",
              help="Only what was logged since TIME (2026-12-03T10:00) or within 30m, 2h, 1d.")
@click.option("--json", "as_json", is_flag=True, help="One JSON document (with --follow, one object per line).")
@click.option("-f", "--follow", is_flag=True,
              help="Go on showing what is logged, as it happens ([log] interface), until interrupted.")
@click.option("-n", "--count", type=click.IntRange(min=1), metavar="N", help="Stop after N packets.")
@click.pass_obj
def log_(opts: Options, jails, since, as_json, follow, count):
    """What the jails' rules logged (pf: pflogd's file, [log] pflog, and its
    rotated copies), one line per packet: time, jail, user (from the jail's
    own passwd; unknown when the rule could not see a socket), verdict,
    direction, interface, proto, source -> destination:port, and the rule
    with its section.  Jails are told apart by the rule's ridentifier.
    With --follow, what pf logs from now on, read live from pflog0 with
    tcpdump (after the file's since --since, when given).

    \b
    Examples (who in which jail tried to send mail; then watch web live):
      jailhooks log --since 1h web
      jailhooks log --follow web
    """
    return call(opts, admin.firewall_log, list(jails), since, as_json, follow, count)


@cli.command()
@click.argument("jail", shell_complete=_complete_jails)
@click.option("--since", metavar="TIME",
              help="Only what was logged since TIME (2026-12-03T10:00) or within 30m, 2h, 1d.")
@click.pass_obj
def suggest(opts: Options, jail, since):
    """Turn what JAIL's learn mode logged (mode = "learn": the default block
    passes and logs) into an allow list in the config's own TOML, grouped
    by protocol, destination and port, with packets and users as comments.

    \b
    Example (watch, then lock down):
      jailhooks suggest web --since 1d
    """
    return call(opts, admin.suggest, jail, since)


@cli.group()
def registry():
    """The lease registry: schema, export, import and recovery."""


@registry.command("migrate")
@click.pass_obj
def registry_migrate(opts: Options):
    """Create or upgrade the schema of a PostgreSQL registry (never done automatically).

    \b
    Example:
      jailhooks registry migrate
    """
    return call(opts, admin.registry_migrate)


@registry.command("export")
@click.pass_obj
def registry_export(opts: Options):
    """Print every lease as JSON (to move between SQLite and PostgreSQL).

    \b
    Example:
      jailhooks registry export > leases.json
    """
    return call(opts, admin.registry_export)


@registry.command("import")
@click.argument("file", type=click.File("rb"))
@click.option("--host", metavar="HOST", help="The host the leases belong to (default: the host each was exported with).")
@click.pass_obj
def registry_import(opts: Options, file, host):
    """Add the leases of an export (all or nothing; overlaps are refused).

    \b
    Example (moving from SQLite to PostgreSQL on host jh1):
      jailhooks registry export > leases.json      (with the SQLite config)
      jailhooks registry import --host jh1 leases.json   (with the fleet config)
    """
    return call(opts, admin.registry_import, file.read(), file.name, host)


@registry.command("recover")
@click.argument("jails", nargs=-1, shell_complete=_complete_jails)
@click.pass_obj
def registry_recover(opts: Options, jails):
    """Rebuild lost leases from the jails' own etc/pw.conf (the configured and
    running jails, and JAILS).  All or nothing: a claim that overlaps another
    or the registry is refused, and nothing changes.

    \b
    Example (the registry was lost; start refuses and says to run this):
      jailhooks registry recover
    """
    return call(opts, admin.registry_recover, list(jails))


@cli.group()
def lease():
    """Leases of a fleet registry."""


@lease.command("move")
@click.argument("jail", shell_complete=_complete_jails)
@click.option("--to", "to_host", required=True, metavar="HOST", help="The host the jail moved to.")
@click.pass_obj
def lease_move(opts: Options, jail, to_host):
    """JAIL moved to HOST: its UID block follows it; its FIB does not.

    \b
    Example:
      jailhooks lease move web --to jh2
    """
    return call(opts, admin.lease_move, jail, to_host)


def click_main(argv: list[str]) -> int:
    try:
        rv = cli.main(args=argv, prog_name="jailhooks", standalone_mode=False)
    except click.UsageError as exc:
        exc.show()
        return int(ExitCode.USAGE)
    except click.exceptions.Exit as exc:
        return exc.exit_code
    except click.Abort:
        return int(ExitCode.FAILED)
    except click.ClickException as exc:
        exc.show()
        return int(ExitCode.USAGE)
    return rv if isinstance(rv, int) else 0
