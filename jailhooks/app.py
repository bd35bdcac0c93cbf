"""One invocation, assembled: the config read and validated, the plugins
loaded, the host picked; the registry opened on first use.  Every command
(commands/) works on an App."""
from __future__ import annotations

import sys
from typing import Any, TextIO

from . import logbook
from .validate import escaped
from .config import ConfigError, build_settings, plugin_list, read_toml
from .context import Context, Jail
from .engine import Engine
from .host import Host
from .hostmode import make_host, state_dir_of
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

    def registry_or_stand_in(self):
        """For the way down, where a stop must take the rules away even when the
        registry cannot be opened: None if it opens, else the error, with a
        stand-in registry (no leases; writes fail) in its place."""
        from .errors import JailhooksError

        try:
            self.registry
        except JailhooksError as exc:
            from .registry import UnavailableRegistry

            self._registry = UnavailableRegistry(exc)
            return exc
        return None

    @property
    def engine(self) -> Engine:
        return Engine(self.settings, self.plugins, self.host, self.registry, self.dry_run, self.verbose)

    def context(self, jail: Jail, phase: str) -> Context:
        return self.engine.context(jail, phase)

    # Report lines carry text from outside (jls paths, plugins' messages): what
    # reaches the terminal has its control characters escaped (validate.escaped).
    def say(self, line: str) -> None:
        if not self.quiet:
            self.out.write(escaped(line, 4000) + "\n")

    def changed(self, line: str) -> None:
        """A change an admin command made: said, and left with syslog."""
        self.say(line)
        if not self.dry_run:
            logbook.log("notice", line)

    def warn(self, line: str) -> None:
        self.progress(None)
        self.err.write(f"jailhooks: {escaped(line, 4000)}\n")

    def progress(self, line: str | None) -> None:
        """A long run's progress on a terminal (stderr, one line rewritten in
        place; None clears it); nothing when stderr is piped or -q is given."""
        isatty = getattr(self.err, "isatty", None)
        if self.quiet or not (isatty and isatty()):
            return
        self.err.write("\r\x1b[K" + ("" if line is None else escaped(line, 200)))
        self.err.flush()

    def close(self) -> None:
        if self._registry is not None:
            self._registry.close()


def setup_logging(verbose: int) -> None:
    """With -v, show the "jailhooks" logger (``ctx.log``) on stderr (without,
    warnings still reach stderr through logging's last resort)."""
    if not verbose:
        return
    import logging

    log = logging.getLogger("jailhooks")
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(logging.Formatter("jailhooks: %(message)s"))
    log.addHandler(handler)
    log.setLevel(logging.DEBUG)



def load_app(config: str | None = None, dry_run: bool = False, quiet: bool = False,
             autoload: bool = True, verbose: int = 0, strict: bool = True, missing_ok: bool = False) -> App:
    raw, source = read_toml(config, missing_ok)
    choice = plugin_list(raw, source)
    plugins = make_plugins(choice.modules, autoload=autoload and choice.autoload, disabled=choice.disabled,
                           firewall=choice.firewall,
                           cache_dir=None if dry_run else state_dir_of(raw), strict=strict)
    sections = []
    for plugin, secs in plugins.collect("jailhooks_config_sections"):
        sections.extend(secs)
    settings = build_settings(raw, source, sections)
    logbook.configure(settings.host["syslog_facility"])
    problems: list[str] = []
    for plugin, found in plugins.collect("jailhooks_check_config", settings=settings):
        problems.extend(found)
    if problems:
        raise ConfigError(problems, source)
    host = make_host(settings.host, dry_run=dry_run, announce=None if quiet else sys.stderr)
    return App(settings, plugins, host, dry_run=dry_run, quiet=quiet, verbose=verbose)
