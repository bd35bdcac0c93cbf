"""Entry point: the fast hook path, and the one place errors become exit codes.

Jail managers call ``jailhooks run PHASE JAIL`` (and ``hook iocage|pot``)
once per start (prestart) and once per stop (poststop), more where a plugin
works at other phases or the manager sets no jail parameters (ezjail, pot),
and at boot for every jail at once.

Start-up tuning, all of it, measured on the FreeBSD path (benchmarks/run.py):

* a prestart whose inputs did not change replays the jail's plan (plan.py,
  replay.py) before anything else is loaded: no plugins, no registry, no
  tomllib (the config's state_dir is read from its plain lines), no typing
  (replay's modules import it for type checkers only, ``TYPE_CHECKING =
  False``); what remains is the interpreter, the console script's ``import
  re`` (pip's template), json for jls, and the commands themselves.  The
  full path, below, runs when a plan is missing or stale:
* main() parses exactly the ``run`` and ``hook`` command lines itself, so the
  hook path does not import click (about the cost of pluggy); anything else
  goes to the click CLI, which produces every usage message
  (tests/test_plugins_unit.py checks that both read a line the same way);
* installed entry points are cached per sys.path (pluginmanager.py), since
  importlib.metadata costs more than the rest of a run;
* the cyclic collector is paused while loading and what loading made is
  frozen (fast_run); the process ends without interpreter teardown (console);
* the host layer spawns each command with os.posix_spawn and select(2)
  (host/runner.py), not subprocess, whose import (with signal, threading,
  selectors and locale) cost about 10 ms of every hook process; waiting
  with subprocess's polling cost nothing measurable (0.02 ms a command);
* modules that only some runs need (logging, the manager readers) are
  imported where they are used; ipaddress and json are not among them any
  more: every prestart reads the running jails (jls JSON: one address, one
  jail) and proves the jail's policy over pf's live rules (pf/prove.py).

tests/test_hookpath.py pins the modules a hook run imports.
"""
from __future__ import annotations

import sys

from .errors import ConfigError, ExitCode, JailhooksError

GLOBAL_FLAGS = {"--dry-run": "dry_run", "-q": "quiet", "--quiet": "quiet"}
RUN_VALUES = {"--path": "path", "--ip4": "ip4", "--ip6": "ip6"}
RUN_FLAGS = {"--force": "force"}


def refuse_option_like_names(argv: list[str]) -> None:
    """A jail manager substitutes the jail's name into ``jailhooks run PHASE
    NAME``: a jail named ``--help`` or ``-h`` must not become an option that
    prints help and exits 0, letting jail(8) start the jail without its rules.
    So after ``run PHASE``, anything that looks like an option and is none of
    run's own is a usage error (exit 64); ``--`` ends the options."""
    from .errors import UsageError

    if "run" not in argv:
        return
    rest = argv[argv.index("run") + 1:]
    if "--" in rest:
        rest = rest[:rest.index("--")]
    if len(rest) < 2 or rest[0].startswith("-"):
        return  # "jailhooks run --help" is a person asking
    for tok in rest[1:]:
        if tok.startswith("-") and tok.partition("=")[0] not in (*RUN_VALUES, *RUN_FLAGS):
            raise UsageError(f"run: {tok!r} is not an option of run; if it is a jail's name, "
                             "put -- before the names (jailhooks run PHASE -- NAME)")


def parse_globals(argv: list[str]) -> tuple[dict, list[str]] | None:
    """The global options before the command word: (options, the command
    word and what follows), or None if one is malformed."""
    opts: dict = {"config": None, "dry_run": False, "quiet": False, "verbose": 0}
    i = 0
    while i < len(argv):
        name, eq, value = argv[i].partition("=") if argv[i].startswith("--") else (argv[i], "", "")
        if name == "--config":
            if not eq:
                i += 1
                value = argv[i] if i < len(argv) else ""
            if not value:
                return None
            opts["config"] = value
        elif name in GLOBAL_FLAGS and not eq:
            opts[GLOBAL_FLAGS[name]] = True
        elif name in ("-v", "--verbose") and not eq:
            opts["verbose"] += 1
        else:
            break
        i += 1
    return opts, argv[i:]


def parse_run(argv: list[str]) -> dict | None:
    """The options of a well-formed ``run`` command line, or None."""
    found = parse_globals(argv)
    if found is None or found[1][:1] != ["run"]:
        return None
    opts, rest = found
    opts.update(path=None, ip4=[], ip6=[], args=[], force=False)
    it = iter(rest[1:])
    for tok in it:
        if tok == "--":
            opts["args"].extend(it)
            break
        name, eq, value = tok.partition("=") if tok.startswith("--") else (tok, "", "")
        if name in RUN_FLAGS and not eq:
            opts[RUN_FLAGS[name]] = True
        elif name in RUN_VALUES:
            value = value if eq else next(it, None)
            if value is None or value.startswith("-"):
                return None
            key = RUN_VALUES[name]
            if key == "path":
                if opts["path"] is not None:
                    return None
                opts["path"] = value
            else:
                opts[key].extend(v for v in value.split(",") if v)
        elif tok.startswith("-"):
            return None  # anything unusual: let click parse (and explain) it
        else:
            opts["args"].append(tok)
    return opts if len(opts["args"]) >= 2 else None


def parse_hook(argv: list[str]) -> dict | None:
    """``[globals] hook iocage|pot ARGS...``: what the managers that cannot
    pass a name run at every start, so it is parsed here too, without click."""
    found = parse_globals(argv)
    if found is None or found[1][:1] != ["hook"]:
        return None
    opts, rest = found
    manager, args = (rest[1], rest[2:]) if len(rest) > 1 else (None, [])
    if manager not in ("iocage", "pot") or not args or args[0] in ("-h", "--help"):
        return None
    opts["manager"], opts["args"] = manager, args
    return opts


def fast_run(opts: dict) -> int:
    import gc

    # Loading makes many long-lived objects and no garbage: collect nothing
    # while loading, then freeze what it made (later collections skip it).
    collecting = gc.isenabled()
    gc.disable()
    try:
        from . import app as app_mod

        app_mod.setup_logging(opts["verbose"])
        app = app_mod.load_app(opts["config"], dry_run=opts["dry_run"], quiet=opts["quiet"], verbose=opts["verbose"])
        gc.freeze()
        if collecting:
            gc.enable()
        try:
            from .commands.run import hook, run

            if opts.get("manager"):
                return hook(app, opts["manager"], opts["args"])
            return run(app, opts["args"][0], opts["args"][1:], opts["path"], opts["ip4"] or None,
                       opts["ip6"] or None, opts["force"])
        finally:
            app.close()
    finally:
        gc.unfreeze()
        if collecting:
            gc.enable()


def hooked(opts: dict) -> int:
    """A hook run: replayed if it can be (replay.py), else the full path.
    iocage's hook is one phase of one jail, then the jail's previous hook."""
    if opts.get("manager") == "iocage":
        from .managers.hooks import iocage

        def phase_of(phase: str, names: list[str], ip4: list[str] | None, ip6: list[str] | None) -> int:
            return started({**opts, "manager": None, "args": [phase, *names], "path": None, "ip4": ip4 or [],
                            "ip6": ip6 or [], "force": False})

        return iocage(phase_of, opts["args"])
    return started(opts)


def started(opts: dict) -> int:
    from .replay import attempt

    code = attempt(opts)
    return fast_run(opts) if code is None else code


def refused(argv: list[str], exc: JailhooksError) -> None:
    """Every refusal goes to syslog too, with the command it refused."""
    from . import logbook
    from .validate import shown

    words = " ".join(shown(a, 40) for a in argv[:6] if a)
    logbook.log("err", f"refused ({int(exc.exit_code)}): {words}: {exc}")


def main(argv: list[str] | None = None) -> int:
    import os

    # Every file jailhooks makes for itself (registry, locks, caches, backups)
    # is root's alone, whatever umask the jail manager runs it with; files it
    # writes into jails get their mode explicitly.
    umask = os.umask(0o077)
    try:
        return _main(sys.argv[1:] if argv is None else list(argv))
    finally:
        os.umask(umask)


def _main(argv: list[str]) -> int:
    verbose = "-v" in argv or "--verbose" in argv
    try:
        refuse_option_like_names(argv)
        opts = parse_run(argv) or parse_hook(argv)
        if opts is not None:
            return hooked(opts)
        from .cli import click_main

        return click_main(argv)
    except ConfigError as exc:
        from .validate import escaped  # messages carry text from outside: no raw terminal escapes

        for problem in exc.problems:
            sys.stderr.write(escaped(f"jailhooks: {exc.source + ': ' if exc.source else ''}{problem}", 2000) + "\n")
        refused(argv, exc)
        return int(exc.exit_code)
    except JailhooksError as exc:
        from .validate import escaped

        sys.stderr.write(escaped(f"jailhooks: {exc}", 2000) + "\n")
        refused(argv, exc)
        return int(exc.exit_code)
    except KeyboardInterrupt:
        sys.stderr.write("jailhooks: interrupted\n")
        return 130
    except Exception as exc:  # a bug: say so in one line; -v shows where
        if verbose:
            raise
        from .validate import escaped

        sys.stderr.write(escaped(f"jailhooks: internal error: {type(exc).__name__}: {exc}", 2000)
                         + " (run with -v for a traceback)\n")
        return int(ExitCode.SOFTWARE)


def console() -> None:
    """The ``jailhooks`` program (console script and ``python -m jailhooks``).

    Runs main(), then ends the process without finalising the interpreter:
    freeing every module and object is a large part of a hook run's own work,
    for a process that is about to vanish.  Everything a normal
    exit does that matters still happens first: atexit handlers (a plugin's
    included), and stdout and stderr are flushed.  Files and the registry are
    already closed by then.  If a plugin left a thread running, exit normally
    so that it can finish.
    """
    code = main()
    threading = sys.modules.get("threading")
    if threading is not None and threading.active_count() > 1:
        sys.exit(code)
    import atexit
    import os

    atexit._run_exitfuncs()  # what Py_Finalize would run first (multiprocessing does the same)
    for stream in (sys.stdout, sys.stderr):
        try:
            stream.flush()
        except (OSError, ValueError):  # a closed pipe (jailhooks status | head)
            pass
    os._exit(code)


if __name__ == "__main__":
    console()
