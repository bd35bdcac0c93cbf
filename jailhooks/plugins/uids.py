"""UID/GID blocks: one block per jail, unique on the host, kept in the registry.

pf matches a local socket by its owner's UID; non-VNET jails share the host's
UID space, so a block no other jail uses identifies the jail.  At create (and
at prestart when the jail has no lease yet) the jail gets the lowest free
block of the pool, and its ``etc/pw.conf`` (``minuid``/``maxuid``/``mingid``/
``maxgid``) and ``etc/adduser.conf`` (``uidstart``) are written so that users
created inside the jail land in the block.  destroy ends the lease.
"""
from __future__ import annotations

import os
import sys

from .. import hookimpl, jailfs, validate
from ..claims import MARK, claim_of, forget_claim, marker
from ..errors import DataError, JailhooksError
from ..config import Field, Section, boolean, integer, list_of

UID_MAX_USABLE = 4294967294  # (uid_t)-1 is "no change"; pf rejects uids >= UID_MAX
# pf matches a block as "user FIRST-1 >< LAST+1", and LAST+1 must itself be a
# uid pfctl takes (below UID_MAX): so no block may end above this
POOL_LAST_MAX = UID_MAX_USABLE - 1
RESERVED = {65533: "nogroup", 65534: "nobody", 4294967295: "(uid_t)-1"}
DEFAULT_FIRST, DEFAULT_LAST, DEFAULT_BLOCK = 100_000, 999_999_999, 1000

SECTION = Section(
    "uids",
    fields={
        "first": Field(integer(1, UID_MAX_USABLE), DEFAULT_FIRST, "lowest UID of the pool"),
        "last": Field(integer(1, POOL_LAST_MAX), DEFAULT_LAST, "highest UID of the pool"),
        "block": Field(integer(1, 100_000_000), DEFAULT_BLOCK, "UIDs per jail"),
        "write_pw_conf": Field(boolean, True, "write etc/pw.conf and etc/adduser.conf in the jail"),
    },
    jail_fields={
        "block": Field(integer(1, 100_000_000)),
        "range": Field(list_of(integer(1, POOL_LAST_MAX))),
        "write_pw_conf": Field(boolean),
    },
)


@hookimpl
def jailhooks_config_sections():
    return [SECTION]


def _reserved_in(first: int, last: int) -> list[str]:
    return [f"{uid} ({what})" for uid, what in RESERVED.items() if first <= uid <= last]


@hookimpl
def jailhooks_check_config(settings):
    problems = []
    sec = settings.section("uids")
    if sec["last"] < sec["first"]:
        problems.append("uids.last: below uids.first")
    elif sec["block"] > sec["last"] - sec["first"] + 1:
        problems.append("uids.block: larger than the pool")
    hit = _reserved_in(sec["first"], sec["last"])
    if hit:
        problems.append(f"uids: the pool {sec['first']}-{sec['last']} contains reserved ids {', '.join(hit)}")
    if sec["first"] < 1000:
        problems.append("uids.first: below 1000, the system and ports range")
    for name, jc in settings.jails.items():
        rng = jc.sections.get("uids", {}).get("range")
        if rng is not None:
            if len(rng) != 2 or rng[1] < rng[0]:
                problems.append(f"jail.{name}.uids.range: must be [first, last] with last >= first")
            elif _reserved_in(*rng) or rng[0] < 1000:
                problems.append(f"jail.{name}.uids.range: must be above 999 and avoid reserved ids")
    return problems


def allocate(ctx):
    """(lease, created): the jail's lease, made now if it had none."""
    sec = ctx.config("uids")
    pool = (sec["first"], sec["last"])
    fixed = tuple(sec["range"]) if sec.get("range") else None
    return ctx.leases.allocate_uids(sec["block"], pool, fixed)


def _check_claims(ctx, lease) -> None:
    """A new lease must not be a block that a jail on this host already holds
    according to its own files: a lost or replaced registry must never hand
    one jail's block to another (their users would swap identities)."""
    own = claim_of(ctx.jail.path)
    if own is not None and own["jail"] == ctx.jail.name:
        raise DataError(f"jail {ctx.jail.name}: its etc/pw.conf says jailhooks gave it UIDs {own['uid_first']}-"
                        f"{own['uid_last']}, but the registry has no lease for it: the registry was lost or "
                        "replaced; run `jailhooks registry recover` (nothing was changed)")
    paths = {name: jc.path for name, jc in ctx.settings.jails.items()}
    try:
        paths.update({j["name"]: j["path"] for j in ctx.host.jails()})
    except JailhooksError:
        pass  # the configured jails are still checked
    for name, path in sorted(paths.items()):
        claim = claim_of(path) if name != ctx.jail.name else None
        if claim and claim["uid_first"] <= lease.uid_last and lease.uid_first <= claim["uid_last"]:
            raise DataError(f"jail {ctx.jail.name}: UIDs {lease.uid_first}-{lease.uid_last} are held by jail {name} "
                            f"(its etc/pw.conf: {claim['uid_first']}-{claim['uid_last']}), which the registry does "
                            "not know: run `jailhooks registry recover` (nothing was changed)")


def _ensure_lease(ctx):
    lease, created = allocate(ctx)
    if created:  # registered at once: whatever fails after this allocation gives the block back
        ctx.on_undo(f"release UIDs {lease.uid_first}-{lease.uid_last}", lambda: ctx.leases.release())
    if created and not ctx.dry_run:
        _check_claims(ctx, lease)
    if created:
        ctx.note(f"UIDs {lease.uid_first}-{lease.uid_last} (new lease)")
    else:
        ctx.note(f"UIDs {lease.uid_first}-{lease.uid_last}")
    return lease


_KEY_CHARS = frozenset("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz_")


def _key_of(line: str) -> str | None:
    """KEY of a ``KEY = value`` or ``KEY value`` line, as pw.conf(5) and
    adduser.conf(5) write them; None for comments and anything else."""
    body = line.lstrip()
    end = 0
    while end < len(body) and body[end] in _KEY_CHARS:
        end += 1
    rest = body[end:]
    return body[:end] if end and (not rest or rest[0] == "=" or rest[0].isspace()) else None


def set_keys(text: str, values: dict[str, str], sep: str) -> str:
    """Set KEY<sep>VALUE lines, keeping every other line (and comments) as it is."""
    lines = text.splitlines()
    seen = set()
    for i, line in enumerate(lines):
        key = _key_of(line)
        if key in values:
            lines[i] = f"{key}{sep}{values[key]}" if key not in seen else f"# {line}  (superseded by jailhooks)"
            seen.add(key)
    for key, value in values.items():
        if key not in seen:
            lines.append(f"{key}{sep}{value}")
    return "\n".join(lines) + "\n"


def _write_user_conf(ctx, lease) -> None:
    if not ctx.config("uids")["write_pw_conf"]:
        return
    if not ctx.jail.path:
        ctx.note("jail path unknown: etc/pw.conf not written")
        return
    if os.path.realpath(ctx.jail.path) == "/":
        # a jail on the host's own root (jail(8)'s default path, service jails):
        # its etc/pw.conf is the host's, never jailhooks' to change
        ctx.note("jail path is / (the host's root): etc/pw.conf and etc/adduser.conf left alone")
        return
    first, last = str(lease.uid_first), str(lease.uid_last)
    wanted = {
        "etc/pw.conf": ({"minuid": first, "maxuid": last, "mingid": first, "maxgid": last}, " = "),
        "etc/adduser.conf": ({"uidstart": first}, "="),
    }
    for rel, (values, sep) in wanted.items():
        old = jailfs.read_text(ctx.jail.path, rel)
        new = set_keys(old or "", values, sep)
        if rel == "etc/pw.conf":
            lines = [line for line in new.splitlines() if not line.startswith(MARK)]
            new = "\n".join(lines + [marker(lease)]) + "\n"
        if old == new:
            continue
        shown = f"{ctx.jail.path.rstrip('/')}/{rel}"
        if ctx.dry_run:
            sys.stdout.write(f"would write: {shown}\n")
            continue
        jailfs.write_text(ctx.jail.path, rel, new)
        ctx.on_undo(f"restore {shown}", lambda rel=rel, old=old: jailfs.remove(ctx.jail.path, rel) if old is None
                    else jailfs.write_text(ctx.jail.path, rel, old))
        ctx.note(f"wrote {rel}")


@hookimpl
def jailhooks_create(ctx):
    _write_user_conf(ctx, _ensure_lease(ctx))


@hookimpl
def jailhooks_prestart(ctx):
    # Existing jails adopt a lease on their first start under jailhooks.
    _write_user_conf(ctx, _ensure_lease(ctx))


@hookimpl
def jailhooks_destroy(ctx):
    # the jail's own record of its block goes first: a run killed between the
    # two leaves a lease that a re-run releases, never a claim with no lease
    if not ctx.dry_run:
        forget_claim(ctx.jail.path, ctx.jail.name)
    lease = ctx.leases.release()
    ctx.note(f"released UIDs {lease.uid_first}-{lease.uid_last}" if lease else "no lease")


@hookimpl
def jailhooks_plan(ctx):
    allocate(ctx)


@hookimpl
def jailhooks_release(ctx):
    if ctx.dry_run:
        return
    try:
        forget_claim(ctx.jail.path, ctx.jail.name)
    except DataError as exc:  # a symlink planted in the jail: the lease is released all the same
        raise DataError(f"etc/pw.conf left as it is: {exc}") from None


@hookimpl
def jailhooks_status(ctx):
    lease = ctx.lease
    return {"uid_range": list(lease.uid_range) if lease else None}


def audit(registry, jail) -> list[tuple[str, str]]:
    """Users and groups of the jail that its pf user rules would not see."""
    lease = registry.get(jail.name)
    if lease is None:
        return [("warning", f"jail {jail.name} has no UID block yet (it gets one at create or first start)")]
    if not jail.path:
        return [("warning", f"jail {jail.name}: path unknown, users not audited")]
    found = []
    for rel, kind in (("etc/passwd", "user"), ("etc/group", "group")):
        for name, uid in jailfs.accounts(jail.path, rel):
            if lease.uid_first <= uid <= lease.uid_last or uid < 1000 or uid in RESERVED:
                continue
            name = validate.shown(name, 32)  # the jail's root wrote it: no escapes into the admin's terminal
            owner = registry.owner_of(uid)
            if owner is not None:
                found.append(("error", f"jail {jail.name}: {kind} {name} ({uid}) is inside the block of jail {owner.jail}"))
            else:
                found.append(("warning", f"jail {jail.name}: {kind} {name} ({uid}) is outside its block "
                                         f"{lease.uid_first}-{lease.uid_last}: its pf user rules will not match it"))
    return found or [("ok", f"jail {jail.name}: users and groups are inside {lease.uid_first}-{lease.uid_last}")]


@hookimpl
def jailhooks_columns(status):
    uids = status.get("uid_range")
    return [("UIDS", f"{uids[0]}-{uids[1]}" if uids else "-")]


@hookimpl
def jailhooks_check(settings, host, registry, jail):
    found = []
    if jail is not None:
        found += audit(registry, jail)
    running = [(j["name"], j["path"]) for j in host.jails()] if jail is None else \
        ([(jail.name, jail.path)] if jail.jid is not None else [])
    for name, path in running:  # a registry lost or replaced while the jails run
        claim = claim_of(path)
        if claim is None or claim["jail"] != name:
            continue
        lease = registry.get(name)
        held = f"UIDs {lease.uid_first}-{lease.uid_last}" if lease else "no lease"
        if lease is None or (lease.uid_first, lease.uid_last) != (claim["uid_first"], claim["uid_last"]):
            found.append(("error", f"jail {name} runs with UIDs {claim['uid_first']}-{claim['uid_last']} (its "
                                   f"etc/pw.conf), the registry holds {held} for it: run `jailhooks registry "
                                   "recover` (the registry was lost or replaced)"))
    return found
