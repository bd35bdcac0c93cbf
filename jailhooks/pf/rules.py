"""The rule types' old home: ``jailhooks.pf.rules`` re-exports them from
``jailhooks.policy`` (firewall-neutral) for plugins written before 0.4;
import them from ``jailhooks`` (``from jailhooks import Filter``) instead."""
from __future__ import annotations

from ..policy import PROTOCOLS, Contribution, Filter, Nat, Rdr

__all__ = ["PROTOCOLS", "Contribution", "Filter", "Nat", "Rdr"]
