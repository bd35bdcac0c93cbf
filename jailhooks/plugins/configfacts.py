"""Facts of a jail from its ``[jail.NAME]`` table.  Runs last, after jls and
any manager reader, for jails that are not running or not known elsewhere."""
from __future__ import annotations

from .. import hookimpl
from ..types import Jail


@hookimpl(trylast=True)
def jailhooks_jail_facts(name, settings):
    jc = settings.jails.get(name)
    if jc is None:
        return None
    return Jail(name=name, path=jc.path, ip4=tuple(jc.ip4), ip6=tuple(jc.ip6), source="config", vnet=jc.vnet)
