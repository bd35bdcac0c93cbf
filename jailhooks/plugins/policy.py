"""The jail's policy as the config states it, whatever the firewall.

Owns the policy's keys: ``[pf]`` and ``[jail.NAME.pf]`` (the section kept its
name from when pf was the only firewall; the same keys drive ipfw), and hands
them to the core as contributions like any plugin's
(``jailhooks_policy_rules``).  ``parent`` is read by the pf backend only.
"""
from __future__ import annotations

from .. import hookimpl, validate
from ..config import Field, Section, boolean, choice, one_or_list, table_of, list_of
from ..policy import Filter, Rdr


def _rule(peer_key: str):
    """A policy rule table; PEER_KEY is "to" (outbound) or "from" (inbound)."""
    return table_of({
        "proto": Field(one_or_list(_proto), list),
        peer_key: Field(one_or_list(validate.destination), list),
        "port": Field(one_or_list(validate.port), list),
        "log": Field(boolean, False),
    })


def _proto(v):
    if v not in ("tcp", "udp", "icmp", "icmp6"):
        raise ValueError(f"protocol {v!r} is not one of tcp, udp, icmp, icmp6")
    return v


def _forward(v):
    """A port forward: { proto, port, to_port, from }, checked as an Rdr."""
    fields = table_of({"proto": Field(one_or_list(_proto), lambda: ["tcp"]), "port": Field(validate.port),
                       "to_port": Field(validate.port, None), "from": Field(one_or_list(validate.destination), list)})
    r = fields(v)
    Rdr(proto=tuple(r["proto"]), port=r["port"], to_port=r["to_port"], peers=tuple(r["from"]))
    return r


USERS = table_of({
    "allow": Field(list_of(_rule("to")), list, "what the jail's users may send (narrows the jail's allow)"),
    "block": Field(list_of(_rule("to")), list, "what the jail's users may not send"),
})
POLICY = {
    "match": Field(choice("auto", "address", "uid", "both"), "auto",
                   "auto: address when the jail has addresses, else uid"),
    "default": Field(choice("block", "pass"), "block", "what happens to everything else the jail sends"),
    "mode": Field(choice("enforce", "learn"), "enforce",
                  "learn: pass and log what the default block would drop (jailhooks suggest reads it)"),
    "log": Field(boolean, True, "log what the default block drops"),
    "interface": Field(validate.interface, ""),
    "allow": Field(list_of(_rule("to")), list, "outbound traffic the jail (every process in it) may send"),
    "block": Field(list_of(_rule("to")), list, "outbound traffic the jail may not send (before any allow)"),
    "users": Field(USERS, dict, "rules for the jail's users, the UIDs of its block"),
    "inbound": Field(list_of(_rule("from")), list, "traffic the jail may receive (passed in the anchor, with state)"),
}
SECTION = Section(
    "pf",
    fields={"parent": Field(validate.anchor_path, "jailhooks", "pf: the anchor under which each jail's anchor lives"),
            **POLICY},
    jail_fields={**{k: Field(v.check) for k, v in POLICY.items()},
                 "inherit_allow": Field(boolean, doc="also apply the global [pf] allow rules (default true)"),
                 "rdr": Field(list_of(_forward), doc="port forwards from the jail's NAT address")},
)


@hookimpl
def jailhooks_config_sections():
    return [SECTION]


def _filters(rules: list, **kw) -> list:
    return [Filter(proto=tuple(r["proto"]), to=tuple(r["to"]), port=tuple(r["port"]), log=r["log"], **kw)
            for r in rules]


def _for_users(rule: dict) -> dict | None:
    """RULE as a rule for the jail's users: pf matches users on tcp and udp
    sockets only, so its other protocols are left out (None: nothing left)."""
    protos = [p for p in rule["proto"] or ["tcp", "udp"] if p in ("tcp", "udp")]
    return {**rule, "proto": protos} if protos else None


@hookimpl
def jailhooks_policy_rules(ctx):
    """The policy from the config, as contributions like any plugin's."""
    glob = ctx.settings.section("pf")
    own = ctx.settings.jails.get(ctx.jail.name)
    own = own.sections.get("pf", {}) if own else {}
    inherit = own.get("inherit_allow", True)
    allow = (glob["allow"] if inherit else []) + own.get("allow", [])
    users = own.get("users", glob["users"])
    users_allow = users.get("allow", [])
    if users_allow and inherit:
        # the users' allow list is all they may send: it keeps what every jail
        # may (the resolver: a script that may reach 443 must still resolve names)
        users_allow = [u for u in map(_for_users, glob["allow"]) if u] + users_allow
    rules = _filters(glob["block"] + own.get("block", []), action="block")
    rules += _filters(allow, action="pass")
    rules += _filters(users.get("block", []), action="block", users=True)
    rules += _filters(users_allow, action="pass", users=True)
    rules += [Filter(action="pass", direction="in", proto=tuple(r["proto"]), peers=tuple(r["from"]),
                     port=tuple(r["port"]), log=r["log"]) for r in own.get("inbound", glob["inbound"])]
    rules += [Rdr(proto=tuple(r["proto"]), port=r["port"], to_port=r["to_port"], peers=tuple(r["from"]))
              for r in own.get("rdr", [])]
    return rules


@hookimpl
def jailhooks_check(settings, host, registry, jail):
    """Every jail in learn mode, on every run: it is not locked down."""
    names = [jail.name] if jail is not None else sorted(set(settings.jails) | {j["name"] for j in host.jails()})
    return [("warning", f"jail {name} is in learn mode: what its policy does not pass is passed and logged, "
                        f"not blocked (jailhooks suggest {name}, then mode = \"enforce\")")
            for name in names if settings.for_jail("pf", name)["mode"] == "learn"]
