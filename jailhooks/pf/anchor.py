"""A jail's pf anchor: its names under ``[pf] parent`` and its text, rendered
from the jail's policy (built by the engine, ``ctx.policy()``)."""
from __future__ import annotations

from typing import Any

from ..errors import DataError
from ..policy import Policy
from .render import AnchorSpec, Names, render_anchor


def names(settings: Any, jail: str) -> Names:
    return Names.of(jail, settings.section("pf")["parent"])


def anchor_of(policy: Policy, settings: Any) -> AnchorSpec:
    """POLICY under its pf names, with the rendered text in ``.text``."""
    spec = AnchorSpec.of(policy, names(settings, policy.jail))
    try:
        spec.text = render_anchor(spec)
    except ValueError as exc:
        raise DataError(str(exc)) from None
    return spec
