"""Source address: make the jail's traffic leave with its own address.

* ``ip4.saddrsel`` / ``ip6.saddrsel`` off (jail(8): "disable source address
  selection for the jail in favour of the primary address"), set on the
  running jail with ``jail -m`` at poststart for each family it has addresses
  in; ``run create`` prints the jail.conf line that makes it hold from birth.
* For a jail on a private address behind one public address: a per-jail
  ``nat on IF inet from <jail table> to any tag TAG -> PUBLIC`` rule in its
  anchor (the classic nat form, present on FreeBSD 13/14/15).  pf translates
  before it filters, so the pf plugin also matches the jail's outbound
  traffic by that tag.
"""
from __future__ import annotations

from .. import hookimpl, validate
from ..config import Field, Section, boolean
from ..policy import Nat

SECTION = Section(
    "saddr",
    fields={
        "saddrsel_off": Field(boolean, True, "turn ip4/ip6.saddrsel off on each jail"),
        "nat_interface": Field(lambda v: validate.interface(v), "", "external interface for per-jail NAT"),
    },
    jail_fields={
        "saddrsel_off": Field(boolean),
        "nat": Field(lambda v: validate.network(v) if "/" not in str(v) else _one(v),
                     doc="public address this jail's traffic is translated to"),
        "nat_interface": Field(lambda v: validate.interface(v)),
    },
)


def _one(v):
    raise ValueError(f"{v!r}: a NAT address must be one address, not a network")


@hookimpl
def jailhooks_config_sections():
    return [SECTION]


@hookimpl
def jailhooks_check_config(settings):
    problems = []
    for name, jc in settings.jails.items():
        own = jc.sections.get("saddr", {})
        if "nat" in own and not (own.get("nat_interface") or settings.section("saddr")["nat_interface"]):
            problems.append(f"jail.{name}.saddr.nat: needs saddr.nat_interface (or jail.{name}.saddr.nat_interface)")
    return problems


@hookimpl
def jailhooks_policy_rules(ctx):
    sec = ctx.config("saddr")
    if not sec.get("nat"):
        return None
    return [Nat(interface=sec["nat_interface"], target=sec["nat"])]


def _families(ctx):
    """Families to turn saddrsel off for; none for a VNET jail, whose own
    stack chooses its source addresses."""
    if ctx.jail.vnet:
        return []
    return [f for f, addrs in (("ip4", ctx.jail.ip4), ("ip6", ctx.jail.ip6)) if addrs]


@hookimpl
def jailhooks_create(ctx):
    if ctx.config("saddr")["saddrsel_off"] and _families(ctx):
        line = " ".join(f"{f}.nosaddrsel;" for f in _families(ctx))
        ctx.note(f"add to the jail's jail.conf section so it holds from creation: {line}")


@hookimpl
def jailhooks_poststart(ctx):
    if not ctx.config("saddr")["saddrsel_off"] or not _families(ctx):
        return
    if ctx.jail.jid is None and not ctx.dry_run:
        # run by hand before the jail exists: the pf anchor (the enforcement) is
        # loaded already; sync or the next poststart sets this.
        ctx.note("jail not running: source address selection left as it is")
        return
    ctx.host.jail_set(ctx.jail.name, *(f"{f}.nosaddrsel" for f in _families(ctx)))
    ctx.note(f"{' '.join(f + '.nosaddrsel' for f in _families(ctx))} set")


@hookimpl
def jailhooks_sync(ctx):
    jailhooks_poststart(ctx)


@hookimpl
def jailhooks_check(settings, host, registry, jail):
    found = []
    for family in ("ip4", "ip6"):
        value = host.sysctl(f"security.jail.{family}_saddrsel")
        if value is not None:  # the 7.3-era global knob; jailhooks sets the per-jail parameter instead
            found.append(("ok", f"legacy sysctl security.jail.{family}_saddrsel={value} (not relied on)"))
    # a jail that should leave with its own address: ip4.nosaddrsel is a jail
    # parameter (one process per start), so a jail started without it shows here
    running = {j["name"]: j for j in host.jails()}
    names = [jail.name] if jail is not None else sorted(running)
    on = host.saddrsel() if any(n in running for n in names) else {}
    for name in names:
        j = running.get(name)
        if j is None or j["vnet"] or registry.get(name) is None \
                or not settings.for_jail("saddr", name).get("saddrsel_off", True):
            continue
        for family in ("ip4", "ip6"):
            if j[family] and on.get(name, {}).get(family):
                found.append(("warning", f"jail {name}: {family}.saddrsel is on, so its connections may leave "
                              f"from any of its addresses: add {family}.nosaddrsel; to its parameters "
                              f"(jailhooks install MANAGER {name}), or run jailhooks sync"))
    return found
