"""Example site plugin: jails marked ``[jail.NAME.dbaccess] allowed = true``
may reach ``[dbaccess] servers`` on ``port`` (TCP); no other jail may."""
from __future__ import annotations

from jailhooks import Field, Filter, Section, boolean, hookimpl, integer, list_of, validate

SECTION = Section(
    "dbaccess",
    fields={
        "servers": Field(list_of(validate.network), list, "database hosts or networks"),
        "port": Field(integer(1, 65535), 5432),
        "allowed": Field(boolean, False, "default for jails that do not say"),
    },
    jail_fields={"allowed": Field(boolean)},
)


@hookimpl
def jailhooks_config_sections():
    return [SECTION]


@hookimpl
def jailhooks_check_config(settings):
    sec = settings.section("dbaccess")
    anyone = sec["allowed"] or any(j.sections.get("dbaccess", {}).get("allowed") for j in settings.jails.values())
    if anyone and not sec["servers"]:
        return ["dbaccess.servers: jails are allowed to reach the databases, but no server is listed"]
    return None


@hookimpl
def jailhooks_policy_rules(ctx):
    sec = ctx.config("dbaccess")
    if not sec["allowed"] or not sec["servers"]:
        return None
    return [Filter(action="pass", proto=("tcp",), to=tuple(sec["servers"]), port=(sec["port"],))]
