"""The plain objects handed to hooks: Jail, Lease and the per-call Context.

Immutable values are NamedTuples and Context is a plain class: a dataclass
costs about a millisecond to define, and these modules sit on the hook path
of every jail start."""
# No `from __future__ import annotations` in this module: it defines NamedTuples,
# and typing compiles each string annotation of their fields, about 0.05 ms a
# field on every hook run.  Optional[...] keeps Python 3.9 working.

from typing import TYPE_CHECKING, Any, Callable, NamedTuple, Optional

if TYPE_CHECKING:
    from .config import Settings
    from .host import Host
    from .registry import Registry

PHASES = ("create", "prestart", "poststart", "prestop", "poststop", "destroy")
UP_PHASES = ("create", "prestart", "poststart")
COMPOSITE = {"start": ("prestart", "poststart"), "stop": ("prestop", "poststop")}


class Jail(NamedTuple):
    """What jailhooks knows of a jail.  jid is None when it is not running."""

    name: str
    path: Optional[str] = None
    ip4: tuple[str, ...] = ()
    ip6: tuple[str, ...] = ()
    hostname: Optional[str] = None
    jid: Optional[int] = None
    source: str = ""  # where the facts came from: options, jls, config, a plugin
    vnet: bool = False  # a network stack of its own (jls: vnet=new)

    @property
    def addresses(self) -> tuple[str, ...]:
        return self.ip4 + self.ip6

    def with_(self, **changes: Any) -> "Jail":
        return self._replace(**changes)


class Lease(NamedTuple):
    """A jail's entry in the registry: its UID/GID block and its FIB, if any."""

    jail: str
    uid_first: int
    uid_last: int
    fib: Optional[int] = None
    fib_exclusive: bool = False
    host: str = ""
    created: float = 0.0

    @property
    def uid_range(self) -> tuple[int, int]:
        return (self.uid_first, self.uid_last)


class Context:
    """Everything a phase hook may use.  Grows by adding attributes, never by
    changing hook signatures, so site plugins keep working."""

    def __init__(self, jail: Jail, phase: str, settings: "Settings", host: "Host", registry: "Registry",
                 dry_run: bool = False, plugins: Any = None) -> None:
        self.jail = jail
        self.phase = phase
        self.settings = settings
        self.host = host
        self.registry = registry
        self.dry_run = dry_run
        self.plugins = plugins  # the Plugins object, for plugins that gather others' contributions
        self.plugin = ""  # name of the plugin being called (set by the engine)
        # True when this run began on a jail that was already running (a re-run
        # of start): its undo must give the jail back its previous state, not
        # take its rules away
        self.was_running = False
        # what an earlier phase of this same run established (e.g. the anchor
        # prestart loaded), so that poststart does not ask pf again
        self.this_run: dict = {}
        self._undo: list[tuple[str, str, Callable[[], None]]] = []
        self._notes: dict[str, list[str]] = {}

    def __repr__(self) -> str:
        return f"Context(jail={self.jail.name!r}, phase={self.phase!r}, plugin={self.plugin!r}, dry_run={self.dry_run})"

    @property
    def log(self):
        """The "jailhooks" logging.Logger (imported on first use: the hook path
        does not pay for the logging module unless something logs)."""
        import logging

        from . import logbook

        log = logging.getLogger("jailhooks")
        if logbook.ENABLED and not any(getattr(h, "to_syslog", False) for h in log.handlers):
            forward = logbook.handler()
            forward.to_syslog = True
            log.addHandler(forward)
            log.setLevel(min(log.level or logging.INFO, logging.INFO))
        return log

    @property
    def lease(self) -> Optional[Lease]:
        return self.registry.get(self.jail.name)

    def config(self, section: str) -> dict:
        """The plugin section's settings for this jail (globals + jail overrides)."""
        return self.settings.for_jail(section, self.jail.name)

    def on_undo(self, what: str, fn: Callable[[], None]) -> None:
        """Register how to undo a step, run in reverse if a later step of this
        run fails on the way up (fail closed)."""
        self._undo.append((self.plugin, what, fn))

    def note(self, message: str) -> None:
        """Add to this plugin's one-line summary of the phase."""
        self._notes.setdefault(self.plugin, []).append(message)
