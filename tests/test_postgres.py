"""The registry contract on both backends, and the PostgreSQL fleet registry
against a real server (tests/pgserver.py starts one)."""
from __future__ import annotations

import json
import multiprocessing

import pytest

from .conftest import status_records

from jailhooks.errors import DataError, PoolExhausted
from jailhooks.registry.postgres import PostgresRegistry
from jailhooks.registry.sqlite import SqliteRegistry

POOL = (100_000, 199_999)


@pytest.fixture(params=["sqlite", "postgres", "postgres-v1"])
def make_registry(request, tmp_path):
    """make_registry(host="a") -> a registry; both backends, same contract
    (PostgreSQL with the schema of version 1 too: sql.py's round trips, as
    before the server-side functions)."""
    made = []
    if request.param == "sqlite":
        def make(host="a"):
            made.append(SqliteRegistry(str(tmp_path), 5, host_name=host))
            return made[-1]
    else:
        url = request.getfixturevalue("pg_url") if request.param == "postgres" else v1_database(
            request.getfixturevalue("pg_server"))

        def make(host="a"):
            made.append(PostgresRegistry(url, 5, host_name=host))
            return made[-1]
    yield make
    for reg in made:
        reg.close()


def v1_database(pg_server) -> str:
    url = pg_server.new_database()
    reg = PostgresRegistry(url, 5, check_schema=False)
    assert reg.migrate(to=1) == (0, 1)
    reg.close()
    return url


def test_contract_lowest_free_disjoint_and_reused(make_registry):
    reg = make_registry()
    a, _ = reg.allocate_uids("a", 1000, POOL)
    b, _ = reg.allocate_uids("b", 500, POOL)
    c, _ = reg.allocate_uids("c", 1000, POOL)
    assert [l.uid_range for l in (a, b, c)] == [(100000, 100999), (101000, 101499), (101500, 102499)]
    assert reg.allocate_uids("a", 1000, POOL) == (a, False)  # idempotent
    reg.release("a")
    d, _ = reg.allocate_uids("d", 400, POOL)
    assert d.uid_range == (100000, 100399)  # lowest free block, the released one
    with pytest.raises(DataError, match="overlap the block of jail b"):
        reg.allocate_uids("e", 10, POOL, fixed=(101400, 101409))
    assert reg.check() == []


def test_contract_pool_exhaustion(make_registry):
    reg = make_registry()
    reg.allocate_uids("a", 1000, (100000, 100999))
    with pytest.raises(PoolExhausted, match="1 blocks in use"):
        reg.allocate_uids("b", 1000, (100000, 100999))


def test_contract_exclusive_fibs(make_registry):
    reg = make_registry()
    for j in ("a", "b", "c"):
        reg.allocate_uids(j, 100, POOL)
    assert reg.allocate_fib("a", range(1, 3), True) == (1, True)
    assert reg.allocate_fib("b", range(1, 3), True) == (2, True)
    with pytest.raises(PoolExhausted, match="raise net.fibs"):
        reg.allocate_fib("c", range(1, 3), True)
    with pytest.raises(DataError, match="held exclusively by jail a"):
        reg.allocate_fib("c", range(0), False, fixed=1)


def test_contract_export_import_round_trip(make_registry, tmp_path):
    src = make_registry()
    for j in ("web", "mail", "db"):
        src.allocate_uids(j, 1000, POOL)
    src.allocate_fib("mail", range(1, 4), True)
    exported = src.export()
    dst = SqliteRegistry(str(tmp_path / "other"), 5, host_name="a")
    assert dst.import_leases(exported) == (3, 0)
    assert dst.import_leases(exported) == (0, 3)  # again: nothing new
    assert dst.export() == exported
    assert dst.allocate_uids("new", 1000, POOL)[0].uid_first == 103000  # free extents rebuilt
    clash = [{**exported[0], "jail": "other"}]
    with pytest.raises(DataError, match="overlap the block of jail"):
        dst.import_leases(clash)
    dst.close()


def test_the_database_itself_refuses_overlaps(pg_url):
    import psycopg

    reg = PostgresRegistry(pg_url, 5)
    reg.allocate_uids("web", 1000, POOL)
    with psycopg.connect(pg_url, autocommit=True) as conn, pytest.raises(psycopg.errors.ExclusionViolation):
        conn.execute("INSERT INTO leases (jail, uid_first, uid_last, host, created) VALUES ('x', 100500, 101500, 'b', 0)")
    reg.close()


def test_leases_belong_to_one_host_and_move(pg_url):
    a, b = PostgresRegistry(pg_url, 5, host_name="a"), PostgresRegistry(pg_url, 5, host_name="b")
    lease, _ = a.allocate_uids("web", 1000, POOL)
    a.allocate_fib("web", range(1, 4), True)
    with pytest.raises(DataError, match="held by host a; if the jail moved here, run: jailhooks lease move web --to b"):
        b.allocate_uids("web", 1000, POOL)
    moved = b.move("web", "b")
    assert (moved.uid_range, moved.fib, moved.host) == (lease.uid_range, None, "b")  # the block follows, the FIB not
    assert b.allocate_uids("web", 1000, POOL)[0].uid_range == lease.uid_range
    b.allocate_uids("mail", 1000, POOL)
    assert b.allocate_fib("mail", range(1, 4), True) == (1, True)  # FIBs are per host
    a.close(), b.close()


def _fleet_worker(url: str, host: str, n: int, queue) -> None:
    try:
        reg = PostgresRegistry(url, 60, host_name=host)
        for i in range(n):
            reg.allocate_uids(f"{host}-j{i}", 1000, POOL)
            if i % 4 == 3:
                reg.release(f"{host}-j{i - 1}")
            try:  # every host also tries a name the others use: exactly one wins
                reg.allocate_uids(f"shared{i % 3}", 1000, POOL)
            except DataError as exc:
                assert "is held by host" in str(exc)
        reg.close()
        queue.put(None)
    except Exception as exc:
        queue.put(f"{host}: {exc!r}")


@pytest.mark.torture
def test_many_processes_as_several_hosts_allocate_at_once(pg_url):
    ctx = multiprocessing.get_context("spawn")
    queue = ctx.Queue()
    procs = [ctx.Process(target=_fleet_worker, args=(pg_url, f"host{h}", 12, queue)) for h in range(4) for _ in range(4)]
    # four processes per host, the same names per host: they race on their own leases too
    for p in procs:
        p.start()
    errors = [queue.get(timeout=180) for _ in procs]
    for p in procs:
        p.join()
    assert errors == [None] * len(procs)
    reg = PostgresRegistry(pg_url, 5)
    leases = reg.leases()
    assert reg.check() == []
    assert len({l.jail for l in leases}) == len(leases)
    blocks = sorted(l.uid_range for l in leases)
    assert all(x[1] < y[0] for x, y in zip(blocks, blocks[1:]))
    assert {l.jail for l in leases if l.jail.startswith("shared")} == {"shared0", "shared1", "shared2"}
    reg.close()


@pytest.fixture
def fleet(env, pg_url):
    env.write_config(f'[registry]\nurl = "{pg_url}"\nhost = "jh1"\n\n[jail.web]\nip4 = "192.0.2.10"\n')
    return env


def test_cli_with_a_fleet_registry(fleet, cli):
    fleet.create_jail("web", ip4="192.0.2.10")
    assert cli("run", "start", "web").code == 0
    status = status_records(cli("status", "--json").out)
    assert status[0]["uid_range"] == [100000, 100999]
    exported = json.loads(cli("registry", "export").out)
    assert [(l["jail"], l["host"]) for l in exported["leases"]] == [("web", "jh1")]
    assert cli("lease", "move", "web", "--to", "jh2").code == 0
    res = cli("run", "prestart", "web")
    assert res.code == 65 and "held by host jh2" in res.err


def test_an_unmigrated_database_is_not_migrated_silently(env, pg_server, cli):
    url = pg_server.new_database()
    env.write_config(f'[registry]\nurl = "{url}"\n')
    res = cli("run", "create", "web", "--ip4", "192.0.2.10")
    assert res.code == 78 and "run `jailhooks registry migrate`" in res.err
    assert "registry" in cli("registry", "migrate").out
    assert cli("run", "create", "web", "--ip4", "192.0.2.10").code == 0


def test_losing_the_database(fleet, cli, pg_server):
    fleet.create_jail("web", ip4="192.0.2.10")
    assert cli("run", "start", "web").code == 0
    pg_server.stop()
    try:
        fleet.sim.run(["/usr/sbin/jail", "-r", "web"], None, 5, True)
        down = cli("run", "poststop", "web")  # the firewall comes down all the same
        assert down.code == 0, down.err
        assert fleet.anchor("jailhooks/web") is None
        up = cli("run", "prestart", "web")  # fails closed, temporary
        assert up.code == 75 and "is unreachable" in up.err
        assert fleet.anchor("jailhooks/web") is None
        destroy = cli("run", "destroy", "web")
        assert destroy.code == 75 and "uids: registry" in destroy.err  # reported, not silently skipped
    finally:
        pg_server.start()
    assert cli("run", "destroy", "web").code == 0  # and it converges once the server is back


def test_sqlite_to_postgres_and_back(env, pg_url, cli, tmp_path):
    env.write_config('[jail.web]\nip4 = "192.0.2.10"\n[jail.mail]\nip4 = "192.0.2.20"\n')
    assert cli("run", "create", "web").code == 0 and cli("run", "create", "mail").code == 0
    dump = tmp_path / "leases.json"
    dump.write_text(cli("registry", "export").out)
    sqlite_config = env.config.read_text()
    env.config.write_text(sqlite_config.replace("[jail.web]", f'[registry]\nurl = "{pg_url}"\n\n[jail.web]'))
    assert cli("registry", "import", str(dump)).code == 0
    back = json.loads(cli("registry", "export").out)
    assert back == json.loads(dump.read_text())


def test_dry_run_changes_nothing_in_the_fleet_registry(fleet, cli):
    res = cli("--dry-run", "run", "create", "web")
    assert res.code == 0, res.err
    assert "web: create: uids: (dry run, not done) UIDs 100000-100999 (new lease)" in res.out  # decided as for real...
    assert json.loads(cli("registry", "export").out)["leases"] == []  # ...and rolled back


def test_messages_never_show_the_password():
    from jailhooks.registry.postgres import redact

    assert redact("postgresql://jh:s3cret@db.example.org:5433/leases") == "postgresql://jh@db.example.org:5433/leases"
    assert redact("postgresql://postgres@/jh?host=/tmp/sock&port=5432") == "postgresql://postgres@/tmp/sock/jh"


def test_import_says_which_host_the_leases_belong_to(env, pg_url, cli, tmp_path):
    """An export carries the host it was made on; moved to a fleet registry
    under another host name, every jail would fail to start until lease move."""
    env.write_config('[jail.web]\nip4 = "192.0.2.10"\n')
    assert cli("run", "create", "web").code == 0
    dump = tmp_path / "leases.json"
    dump.write_text(cli("registry", "export").out)
    env.config.write_text(env.config.read_text().replace(
        "[jail.web]", f'[registry]\nurl = "{pg_url}"\nhost = "jh1"\n\n[jail.web]'))
    assert cli("registry", "import", "--host", "jh1", str(dump)).code == 0
    assert [lease["host"] for lease in json.loads(cli("registry", "export").out)["leases"]] == ["jh1"]
    env.create_jail("web", ip4="192.0.2.10")
    assert cli("run", "start", "web").code == 0  # the lease is this host's
    assert cli("registry", "import", "--host", "bad host", str(dump)).code == 64


@pytest.mark.parametrize("change,code,message", [
    (("postgresql://postgres@", "postgresql://nosuch:wrong@"), 77, "refused the login"),  # class 28: not "try again"
    (("?host=", "_missing?host="), 78, "no such database"),
])
def test_a_refused_login_or_a_missing_database_is_not_a_temporary_failure(env, pg_url, cli, change, code, message):
    env.write_config(f'[registry]\nurl = "{pg_url.replace(*change)}"\nhost = "jh1"\n\n[jail.web]\nip4 = "192.0.2.10"\n')
    res = cli("run", "create", "web")
    assert res.code == code and message in res.err, res.err
    assert "wrong" not in res.err  # the password is never shown


class Counting:
    """The statements a registry sends (each one round trip, autocommit)."""

    def __init__(self, reg):
        self.sent: list[str] = []
        conn = reg.db.conn  # connected before counting
        real = conn.execute

        def execute(sql, params=None, **kw):
            self.sent.append(" ".join(str(sql).split())[:60])
            return real(sql, params, **kw)

        conn.execute = execute


def test_allocation_and_release_are_one_round_trip_each(pg_url):
    reg = PostgresRegistry(pg_url, 5, host_name="a")
    counting = Counting(reg)
    lease, made = reg.allocate_uids("web", 1000, POOL)
    assert made and lease.uid_range == (100000, 100999)
    assert reg.allocate_uids("web", 1000, POOL) == (lease, False)
    assert reg.release("web") == lease
    assert counting.sent == ["SELECT * FROM jailhooks_allocate(%s, %s, %s, %s, %s, %s, %s,"] * 2 + \
        ["SELECT * FROM jailhooks_release(%s, %s, %s)"]
    assert reg.check() == []
    reg.close()


def test_a_fib_recorded_as_asked_takes_no_lock(pg_url):
    reg = PostgresRegistry(pg_url, 5, host_name="a")
    reg.allocate_uids("web", 1000, POOL)
    assert reg.allocate_fib("web", range(1, 4), True) == (1, True)
    counting = Counting(reg)
    assert reg.allocate_fib("web", range(1, 4), True) == (1, False)
    assert len(counting.sent) == 1 and counting.sent[0].startswith("SELECT fib, fib_exclusive, host FROM leases")
    reg.close()


def test_a_version_1_database_works_until_it_is_migrated(env, pg_server, cli):
    """Every host's jailhooks can be upgraded before the shared database."""
    url = v1_database(pg_server)
    env.write_config(f'[registry]\nurl = "{url}"\n')
    assert cli("run", "create", "web", "--ip4", "192.0.2.10").code == 0
    res = cli("registry", "migrate")
    assert res.code == 0 and "1 -> 2" in res.out, res.out
    reg = PostgresRegistry(url, 5)
    assert reg.allocate_uids("web", 1000, POOL)[0].uid_range == (100000, 100999)  # found by the function
    assert reg.version == 2 and reg.check() == []
    reg.close()
