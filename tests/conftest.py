"""Shared fixtures: a throwaway host (state dir + config) driven through the CLI."""
from __future__ import annotations

import os
from pathlib import Path

import pytest

from jailhooks.testing import Result, SimHost

FIXTURES = Path(__file__).parent / "fixtures" / "freebsd-15.1"
REPO = Path(__file__).resolve().parent.parent


def status_records(text: str) -> list[dict]:
    """The jails of a ``status --json`` document, each flattened (jailhooks.testing)."""
    return Result(0, text, "").jails()


class Env(SimHost):
    """jailhooks.testing's simulated host, as this project's tests use it."""

    def run(self, *args: str, capsys=None) -> Result:
        if capsys is not None:
            self.capsys = capsys
        return super().run(*args)


@pytest.fixture
def env(tmp_path, monkeypatch, capsys) -> Env:
    monkeypatch.delenv("JAILHOOKS_CONFIG", raising=False)
    env = Env(tmp_path, capsys)
    yield env
    env.close()


@pytest.fixture
def cli(env):
    """cli("run", "start", "web") -> Result, in-process."""
    return lambda *args: env.run(*args)


@pytest.fixture(scope="session")
def pg_server():
    """A real PostgreSQL server.  Skipped, saying why, when none can be started;
    under CI (CI=true) that is a failure instead: the fleet tests must run."""
    try:
        import psycopg  # noqa: F401

        from .pgserver import PgServer

        server = PgServer()
    except Exception as exc:  # no binaries, no psycopg, cannot start
        if os.environ.get("CI"):
            pytest.fail(f"PostgreSQL tests cannot run in CI: {exc}")
        pytest.skip(f"PostgreSQL tests skipped: {exc}")
    yield server
    server.destroy()


@pytest.fixture
def pg_url(pg_server) -> str:
    """A fresh, migrated database."""
    from jailhooks.registry.postgres import PostgresRegistry

    url = pg_server.new_database()
    reg = PostgresRegistry(url, 5, check_schema=False)
    reg.migrate()
    reg.close()
    return url
