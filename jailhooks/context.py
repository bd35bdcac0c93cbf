"""The context a phase hook receives: its own jail, its lease, its settings,
the host, a log, and how to register undo steps and notes.  It gives no
access to the plugin manager or to other jails' leases."""
from __future__ import annotations

from typing import TYPE_CHECKING, Any, Callable, Optional

from .types import COMPOSITE, PHASES, UP_PHASES, Jail, Lease

if TYPE_CHECKING:
    from .config import Settings
    from .host import Host
    from .registry import Registry

__all__ = ["COMPOSITE", "PHASES", "UP_PHASES", "Context", "Jail", "Lease", "Leases"]


class Leases:
    """The registry, as far as one jail's own lease goes (``ctx.leases``)."""

    __slots__ = ("_registry", "_jail")

    def __init__(self, registry: "Registry", jail: str) -> None:
        self._registry, self._jail = registry, jail

    def get(self) -> Optional[Lease]:
        return self._registry.get(self._jail)

    def allocate_uids(self, size: int, pool: tuple[int, int], fixed: Optional[tuple[int, int]] = None):
        """(lease, made now): the jail's UID block, the lowest free one if it has none."""
        return self._registry.allocate_uids(self._jail, size, pool, fixed)

    def allocate_fib(self, candidates: range, exclusive: bool, fixed: Optional[int] = None):
        return self._registry.allocate_fib(self._jail, candidates, exclusive, fixed)

    def clear_fib(self) -> None:
        self._registry.clear_fib(self._jail)

    def release(self) -> Optional[Lease]:
        return self._registry.release(self._jail)


class Context:
    """Everything a phase hook may use.  Grows by adding attributes, never by
    changing hook signatures, so site plugins keep working."""

    def __init__(self, jail: Jail, phase: str, settings: "Settings", host: "Host", registry: "Registry",
                 dry_run: bool = False, policy: Optional[Callable[["Context", Optional[Lease]], Any]] = None) -> None:
        self.jail = jail
        self.phase = phase
        self.settings = settings
        self.host = host
        self.leases = Leases(registry, jail.name)
        self.dry_run = dry_run
        self._policy_of = policy
        self._policies: dict = {}  # built once per context: by lease (None: the registry's)
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
        return self.leases.get()

    def policy(self, lease: Optional[Lease] = None) -> Any:
        """The jail's policy (jailhooks.policy.Policy): its rules from the
        config and every plugin's ``jailhooks_policy_rules``, built by the
        core once per context (LEASE: a lease other than the registry's, e.g.
        the one start would allocate).  Firewall plugins render it."""
        if self._policy_of is None:
            raise RuntimeError("this context has no policy")
        lease = lease or self.lease  # keyed by the lease in force: an allocation earlier in the phase counts
        key = lease.uid_range if lease is not None else None
        if key not in self._policies:
            self._policies[key] = self._policy_of(self, lease)
        return self._policies[key]

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
