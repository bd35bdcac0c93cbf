"""FIBs: give a jail its own routing table, and make that table exist.

Modes: ``none`` (the host's FIB), ``shared`` (a fixed FIB for a class of
jails, e.g. "restricted jails use FIB 1, which has no default route"), or
``exclusive`` (a FIB of its own from ``first .. net.fibs-1``, recorded in the
lease so no two jails ever get the same one).

jail(8) applies ``exec.fib`` only to the commands it runs inside the jail,
jexec(8) not at all, and any process may call setfib(2): a FIB is routing
policy, not a security boundary, which is why the pf anchor stays the
enforcement.  With ``net.add_addr_allfibs=0`` (the default since 13.0) a new
FIB has no interface routes, so the connected routes go in before the
gateway: ``route add -net NET -iface IF -fib N``, then ``route add default GW
-fib N``.
"""
from __future__ import annotations


from .. import hookimpl, validate
from ..config import Field, Section, choice, integer, list_of, table_of
from ..errors import CommandError, DataError, JailhooksError, PoolExhausted

CONNECTED = table_of({"net": Field(validate.network), "interface": Field(validate.interface)})
ROUTE = table_of({"net": Field(validate.network), "gateway": Field(validate.network)})


def _gateway(v):
    return "" if v == "" else validate.network(v)


ROUTING = {
    "mode": Field(choice("none", "shared", "exclusive"), "none"),
    "fib": Field(integer(0, 65534), 1, "shared mode: the FIB number"),
    "connected": Field(list_of(CONNECTED), list, "interface routes to put in the FIB first"),
    "gateway": Field(_gateway, "", "default route of the FIB; empty: none"),
    "routes": Field(list_of(ROUTE), list, "more routes: net via gateway"),
}
SECTION = Section(
    "fib",
    fields={**ROUTING, "first": Field(integer(1, 65534), 1, "exclusive mode: lowest FIB handed out")},
    jail_fields={k: Field(v.check) for k, v in ROUTING.items()},
)


@hookimpl
def jailhooks_config_sections():
    return [SECTION]


def net_fibs(host) -> int:
    value = host.sysctl("net.fibs")
    return int(value) if value and value.isdigit() else 1


def _ensure(ctx):
    """Record the jail's FIB in its lease; returns (fib, newly recorded) or None."""
    sec = ctx.config("fib")
    lease = ctx.lease
    if sec["mode"] == "none":
        if lease and lease.fib is not None:
            ctx.leases.clear_fib()
            ctx.note(f"FIB {lease.fib} no longer used (mode none)")
        return None
    if lease is None:
        raise DataError(f"jail {ctx.jail.name} has no lease to record its FIB in (is the uids plugin disabled?)")
    fibs = net_fibs(ctx.host)
    raise_hint = ("raise net.fibs (sysctl net.fibs=N at run time, it only grows; "
                  "net.fibs=\"N\" in /boot/loader.conf to keep it)")
    if sec["mode"] == "shared":
        if sec["fib"] >= fibs:
            raise PoolExhausted(f"jail {ctx.jail.name}: FIB {sec['fib']} does not exist (net.fibs={fibs}): {raise_hint}")
        fib, new = ctx.leases.allocate_fib(range(0), exclusive=False, fixed=sec["fib"])
    else:
        first = ctx.settings.section("fib")["first"]
        if lease.fib is not None and lease.fib_exclusive and lease.fib >= fibs:
            raise PoolExhausted(f"jail {ctx.jail.name}: its FIB {lease.fib} no longer exists (net.fibs={fibs}): {raise_hint}")
        fib, new = ctx.leases.allocate_fib(range(first, fibs), exclusive=True)
    if new:
        ctx.on_undo(f"forget FIB {fib}", lambda: ctx.leases.clear_fib())
        if sec["mode"] == "exclusive":  # whatever a previous owner left in it (a default route) goes first
            ctx.host.route_flush(fib)
    ctx.note(f"FIB {fib} ({sec['mode']}{', new' if new else ''})")
    return fib, new


def _family(net: str) -> str:
    return "-6" if ":" in net else "-4"


def route_plan(sec) -> list[tuple[str, list[str], list[str]]]:
    """(family flag, route add arguments, route delete arguments) for the
    FIB's table, connected routes first (route(8): ``route [-46] add ...``)."""
    plan = [(_family(c["net"]), ["-net", c["net"], "-iface", c["interface"]], ["-net", c["net"]])
            for c in sec["connected"]]
    if sec["gateway"]:
        plan.append((_family(sec["gateway"]), ["default", sec["gateway"]], ["default"]))
    plan += [(_family(r["net"]), ["-net", r["net"], r["gateway"]], ["-net", r["net"]]) for r in sec["routes"]]
    return plan


def _route(ctx, family, verb, args, fib):
    ctx.host.route(verb, family, args, fib)


def _add_routes(ctx, fib, undo: bool) -> int:
    added = 0
    for family, add, delete in route_plan(ctx.config("fib")):
        if not ctx.host.route_set(family, add, fib, delete):
            continue  # it was there: changed to what the config says
        added += 1
        if undo:
            ctx.on_undo(f"delete route {' '.join(delete)} -fib {fib}",
                        lambda family=family, delete=delete: _route(ctx, family, "delete", delete, fib))
    return added


def _vnet(ctx) -> bool:
    """A VNET jail routes in its own stack: a host FIB does not apply to it."""
    if ctx.jail.vnet and ctx.config("fib")["mode"] != "none":
        ctx.note("VNET jail: it has routing tables of its own, no FIB set up")
    return ctx.jail.vnet


@hookimpl
def jailhooks_create(ctx):
    if _vnet(ctx):
        return
    got = _ensure(ctx)
    if got:
        ctx.note(f"make it hold from creation: exec.fib = {got[0]}; in the jail's jail.conf section "
                 f"(ezjail: jail_{ctx.jail.name}_fib={got[0]}, iocage: exec_fib={got[0]})")


@hookimpl
def jailhooks_prestart(ctx):
    if _vnet(ctx):
        return
    got = _ensure(ctx)
    if got:
        added = _add_routes(ctx, got[0], undo=True)
        if added:
            ctx.note(f"{added} route(s) added to FIB {got[0]}")


def clear_fib(host, sec, fib: int) -> None:
    """Empty an exclusive FIB that is being freed, so that its next owner does
    not inherit routes (a default route its config says it must not have)."""
    host.route_flush(fib)
    errors = []
    for family, _add, delete in reversed(route_plan(sec)):
        if delete[0] == "default" or delete[-1] in [r["net"] for r in sec["routes"]]:
            continue  # gateway routes: flushed above
        try:
            host.route_delete_if_there(family, delete, fib)
        except CommandError as exc:
            errors.append(f"route delete {' '.join(delete)} -fib {fib}: {exc}")
    if errors:
        raise DataError("; ".join(errors))


@hookimpl
def jailhooks_destroy(ctx):
    lease = ctx.lease
    if lease is None or lease.fib is None:
        return
    if lease.fib_exclusive:  # a shared FIB's routes serve other jails too
        clear_fib(ctx.host, ctx.config("fib"), lease.fib)
        ctx.note(f"routes of FIB {lease.fib} removed")
    ctx.leases.clear_fib()


@hookimpl
def jailhooks_release(ctx):
    lease = ctx.lease
    if lease is not None and lease.fib is not None and lease.fib_exclusive:
        try:  # its next owner must not inherit this jail's routes
            clear_fib(ctx.host, ctx.config("fib"), lease.fib)
        except JailhooksError as exc:
            raise DataError(f"FIB {lease.fib} not emptied: {exc}") from None


@hookimpl
def jailhooks_sync(ctx):
    lease = ctx.lease
    if lease is not None and lease.fib is not None:
        _add_routes(ctx, lease.fib, undo=False)


@hookimpl
def jailhooks_status(ctx):
    lease = ctx.lease
    return {"fib": lease.fib if lease else None}


@hookimpl
def jailhooks_columns(status):
    return [("FIB", "-" if status.get("fib") is None else str(status["fib"]))]


@hookimpl
def jailhooks_check(settings, host, registry, jail):
    found = []
    fibs = net_fibs(host)
    for lease in registry.leases():
        if lease.fib is not None and lease.fib >= fibs:
            found.append(("error", f"jail {lease.jail}: FIB {lease.fib} does not exist (net.fibs={fibs})"))
    if jail is not None:
        lease = registry.get(jail.name)
        sec = settings.for_jail("fib", jail.name)
        if lease and lease.fib is not None and lease.fib_exclusive and not sec["gateway"]:
            for family in ("-4", "-6"):
                if host.route_exists(family, "default", lease.fib):
                    found.append(("error", f"jail {jail.name}: FIB {lease.fib} has a default route ({family}) that "
                                           "its config does not give it (jailhooks sync does not remove it: "
                                           f"route -n flush -fib {lease.fib}, then jailhooks sync)"))
        if lease and lease.fib is not None:
            for family, _add, delete in route_plan(sec):
                dest = delete[-1]
                if not host.route_exists(family, dest, lease.fib):
                    found.append(("warning", f"jail {jail.name}: FIB {lease.fib} lacks its route to {dest}"))
    used = sorted({l.fib for l in registry.leases() if l.fib is not None})
    found.append(("ok", f"net.fibs={fibs}; FIBs in use: {', '.join(map(str, used)) or 'none'}"))
    return found
