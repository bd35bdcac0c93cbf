"""Facts of a running jail, from jls(8).  Runs first: what the kernel says
about a live jail beats any config file."""
from __future__ import annotations

from .. import hookimpl
from ..types import Jail


@hookimpl(tryfirst=True)
def jailhooks_jail_facts(name, host):
    found = host.jail(name)
    if found is None:
        return None
    return Jail(name=name, path=found["path"], ip4=tuple(found["ip4"]), ip6=tuple(found["ip6"]),
                hostname=found["hostname"], jid=found["jid"], source="jls", vnet=found["vnet"])
