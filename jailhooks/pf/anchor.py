"""Building a jail's anchor: a core job, the same for `render`, `run start`
and `sync`.  The pf settings say how the jail is known and what happens to
the rest; every plugin (the pf plugin's config policy included) contributes
its rules through ``jailhooks_pf_rules``."""
from __future__ import annotations

from typing import Any

from ..errors import DataError
from .render import AnchorSpec, Names, render_anchor, resolve_match


def names(settings: Any, jail: str) -> Names:
    return Names.of(jail, settings.section("pf")["parent"])


def build(ctx: Any, plugins: Any, lease: Any = None) -> AnchorSpec:
    """The anchor of CTX's jail: its spec, with the rendered text in ``.text``.
    LEASE: the jail's lease (default: what the registry holds; `render` passes
    the one start would allocate)."""
    pol = ctx.config("pf")
    lease = lease or ctx.lease
    contributions = []
    for plugin, rules in plugins.collect("jailhooks_pf_rules", ctx=ctx):
        if not isinstance(rules, (list, tuple)):
            raise DataError(f"plugin {plugin}: jailhooks_pf_rules must return a list of rules")
        contributions.append((plugin, tuple(rules)))
    spec = AnchorSpec(names=names(ctx.settings, ctx.jail.name), ip4=ctx.jail.ip4, ip6=ctx.jail.ip6,
                      uid_range=lease.uid_range if lease else None,
                      match=resolve_match(pol["match"], bool(ctx.jail.addresses)),
                      interface=pol["interface"] or None, default=pol["default"], log_blocked=pol["log"],
                      contributions=tuple(contributions), vnet=ctx.jail.vnet)
    try:
        spec.text = render_anchor(spec)
    except ValueError as exc:
        raise DataError(str(exc)) from None
    return spec
