"""The lease registry: durable UID blocks and FIBs, keyed by jail name.

The interface is small so that a server-backed store (PostgreSQL, for a
fleet) can implement it too; SQLite in the state directory is the default.
"""
from __future__ import annotations

from typing import Protocol

from ..types import Lease


class Registry(Protocol):
    def get(self, jail: str) -> Lease | None: ...

    def leases(self) -> list[Lease]: ...

    def allocate_uids(self, jail: str, size: int, pool: tuple[int, int],
                      fixed: tuple[int, int] | None = None) -> tuple[Lease, bool]:
        """The jail's lease, made now (True) or already there (False)."""

    def allocate_fib(self, jail: str, candidates: range, exclusive: bool,
                     fixed: int | None = None) -> tuple[int, bool]:
        """Record the jail's FIB: FIXED, or the lowest free one of CANDIDATES."""

    def clear_fib(self, jail: str) -> None: ...

    def release(self, jail: str) -> Lease | None: ...

    def move(self, jail: str, to_host: str) -> Lease: ...

    def export(self) -> list[dict]: ...

    def import_leases(self, leases: list) -> tuple[int, int]: ...

    def check(self) -> list[str]: ...

    def close(self) -> None: ...


class UnavailableRegistry:
    """Stands in for a registry that cannot be opened, on the way down only:
    it knows no lease, and every change fails with the reason, so a stop still
    takes the jail's rules away and reports that its lease was not updated."""

    fleet = False
    host_name = ""

    def __init__(self, error: Exception) -> None:
        self.error = error

    def get(self, jail: str) -> None:
        return None

    def leases(self) -> list:
        return []

    def close(self) -> None:
        pass

    def __getattr__(self, name: str):
        raise self.error


def open_registry(settings, dry_run: bool = False) -> "Registry":
    """SQLite in the state directory, or PostgreSQL when [registry] url is set."""
    reg = settings.registry
    lock_timeout = settings.host["lock_timeout"]
    if reg["url"]:
        from .postgres import PostgresRegistry

        return PostgresRegistry(reg["url"], lock_timeout, host_name=reg["host"], dry_run=dry_run)
    from .sqlite import SqliteRegistry

    return SqliteRegistry(settings.state_dir, lock_timeout, dry_run=dry_run, host_name=reg["host"])
