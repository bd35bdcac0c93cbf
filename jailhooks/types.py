"""The values every part of jailhooks shares: a jail's facts and its lease.
A leaf module: it imports nothing of jailhooks, so anything may import it.

Records: values that cross a module's boundary are NamedTuples (immutable;
those that come from outside validate in ``__new__``); a module's own records
are plain classes with ``__slots__``."""
from __future__ import annotations

from typing import Any, NamedTuple

PHASES = ("create", "prestart", "created", "poststart", "prestop", "poststop", "destroy")
UP_PHASES = ("create", "prestart", "created", "poststart")
COMPOSITE = {"start": ("prestart", "created", "poststart"), "stop": ("prestop", "poststop")}


class Jail(NamedTuple):
    """What jailhooks knows of a jail.  jid is None when it is not running."""

    name: str
    path: str | None = None
    ip4: tuple[str, ...] = ()
    ip6: tuple[str, ...] = ()
    hostname: str | None = None
    jid: int | None = None
    source: str = ""  # where the facts came from: options, jls, config, a plugin
    vnet: bool = False  # a network stack of its own (jls: vnet=new)

    @property
    def addresses(self) -> tuple[str, ...]:
        return self.ip4 + self.ip6

    def with_(self, **changes: Any) -> Jail:
        return self._replace(**changes)


class Lease(NamedTuple):
    """A jail's entry in the registry: its UID/GID block and its FIB, if any."""

    jail: str
    uid_first: int
    uid_last: int
    fib: int | None = None
    fib_exclusive: bool = False
    host: str = ""
    created: float = 0.0

    @property
    def uid_range(self) -> tuple[int, int]:
        return (self.uid_first, self.uid_last)
