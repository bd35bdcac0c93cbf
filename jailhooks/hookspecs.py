"""Every hook jailhooks calls, with its contract.

Call order
----------
Every hook is called through pluggy, one plugin at a time (pluggy's hook
caller narrowed to that plugin), so that a failure is attributed to one plugin
and the engine can undo or carry on.  The order is:

* on the way up (create, prestart, poststart): ``tryfirst`` implementations,
  then ordinary ones, then ``trylast`` ones; within each group in registration
  order: built-ins first (uids, fib, pf, saddr), then entry-point plugins,
  then the modules listed in the config's ``plugins``;
* on the way down (prestop, poststop, destroy): exactly the reverse.

So a site plugin's prestart runs after the built-ins have given the jail its
lease and anchor, and its poststop runs before they are taken away.

Since each call reaches one plugin, a wrapper (``wrapper=True`` or
``hookwrapper=True``) could never wrap the others: plugins that declare one
are refused at load.  pluggy's tracing and ``add_hookcall_monitoring`` see
every call.

Failure
-------
A phase hook fails by raising.  On the way up the first failure stops the run
and every step registered with ``ctx.on_undo`` so far is undone in reverse;
on the way down every implementation runs and all failures are reported.
Raise :class:`jailhooks.errors.JailhooksError` subclasses for expected
failures (their message is shown as is); anything else is reported with its
type and, with ``-v``, a traceback.

Compatibility: hooks only ever gain arguments; implementations may accept any
subset of them.
"""
from __future__ import annotations

from typing import TYPE_CHECKING

import pluggy

if TYPE_CHECKING:
    from .config import Section, Settings
    from .context import Context, Jail
    from .host import Host
    from .policy import Contribution

hookspec = pluggy.HookspecMarker("jailhooks")


@hookspec
def jailhooks_config_sections() -> "list[Section]":
    """Declare the config sections this plugin owns.

    Called once when the config is loaded, before anything else.  Return a
    list of :class:`jailhooks.config.Section`; keys nobody declares are
    rejected, so a plugin must declare every key it reads.
    """


@hookspec
def jailhooks_check_config(settings: "Settings") -> "list[str] | None":
    """Check cross-key rules of this plugin's own sections, after every key
    has been type-checked.  Return a list of problems (each naming its key,
    e.g. ``"uids.last: below uids.first"``) or None.  All plugins' problems
    are reported at once, with the file name, and the command exits 78.
    """


@hookspec(firstresult=True)
def jailhooks_jail_facts(name: str, settings: "Settings", host: "Host") -> "Jail | None":
    """Resolve a jail's facts (path, addresses, jid) by its validated name.

    Stops at the first non-None result (``firstresult``), with one exception:
    a VNET jail that jls knows shows no addresses (they live in its own
    network stack), so its kernel facts are kept and its addresses come from
    the next source that answers.  Built-ins: ``jls`` for a running jail
    (tryfirst), then ``[jail.NAME]`` from the config (trylast).  A manager
    reader returns what its own config says.  Options given on the command
    line (``--path``, ``--ip4``, ``--ip6``) override whatever is returned.
    """


@hookspec
def jailhooks_create(ctx: "Context") -> None:
    """The jail is being created (ezjail-admin create, iocage create, or by
    hand).  Allocate durable resources: the lease's UID block and FIB, files
    inside the jail root.  Up phase: fail closed."""


@hookspec
def jailhooks_prestart(ctx: "Context") -> None:
    """jail(8) exec.prestart: before the jail exists (its addresses are
    already on the interfaces).  Load the firewall so that the jail never runs
    without it.  Up phase: failing here keeps the jail from starting.

    A site plugin implementing this hook (or created, poststart or
    jail_facts) is asked at every start: no jail is replayed from a compiled
    plan (plan.py) while it is loaded.  A plugin that only contributes rules
    (``jailhooks_policy_rules``) is compiled into the plan with them."""


@hookspec(firstresult=True)
def jailhooks_firewall_log(settings: "Settings", host: "Host", registry, since: "float | None") -> "list[dict] | None":
    """``jailhooks log``: what the jails' rules logged (since SINCE, epoch
    seconds, when given), oldest first, one dict per packet: ``time`` (ISO 8601, UTC),
    ``jail`` (None: not a jail's rule), ``uid`` (None: not known), ``user``,
    ``verdict``, ``direction``, ``proto``, ``src``, ``dst``, ``port``,
    ``interface``, ``rule`` and ``section``.  The firewall plugin reads its own
    log (pf: pflogd's file); None: it keeps none that jailhooks reads."""


@hookspec(firstresult=True)
def jailhooks_firewall_follow(settings: "Settings", host: "Host", registry) -> "object | None":
    """``jailhooks log --follow``: what the jails' rules log from now on, as
    it happens.  An iterable of dicts as jailhooks_firewall_log gives them,
    with a ``close()`` that stops it and a ``what`` (what it follows, for the
    message); it is ready (listening) when returned.  None: the firewall
    plugin cannot follow its log."""


@hookspec
def jailhooks_created(ctx: "Context") -> None:
    """jail(8) exec.created: the jail exists (``ctx.jail.jid`` is its new
    JID) and nothing runs in it yet: the first moment rules can name its
    prison.  ``install`` prints the line only when a plugin implements this
    hook; where a manager has no such hook, poststart has to do its work.
    Up phase: failing here makes jail(8) remove the jail again."""


@hookspec
def jailhooks_poststart(ctx: "Context") -> None:
    """jail(8) exec.poststart: the jail runs (``ctx.jail.jid`` is set when jls
    knows it).  Set parameters on the running jail (jail -m).  Up phase:
    failing here makes jail(8) remove the jail again."""


@hookspec
def jailhooks_prestop(ctx: "Context") -> None:
    """jail(8) exec.prestop: the jail still runs.  Down phase: every
    implementation runs; a failure here makes jail(8) keep the jail."""


@hookspec
def jailhooks_poststop(ctx: "Context") -> None:
    """jail(8) exec.poststop: the jail is gone.  Remove its firewall rules and
    states.  Down phase: every implementation runs, all errors reported."""


@hookspec
def jailhooks_destroy(ctx: "Context") -> None:
    """The jail is being destroyed for good: end its lease, free its FIB.
    Down phase."""


@hookspec
def jailhooks_release(ctx: "Context") -> None:
    """``jailhooks release NAME``: the jail's lease ends without a destroy (the
    jail was removed by hand).  Give back what the lease holds outside the
    registry (the routes of an exclusive FIB, the jail's record of its
    block) while ``ctx.lease`` still shows it; the core ends the lease
    afterwards, whatever failed.  Every implementation runs, on the way down;
    failures are reported as warnings."""


@hookspec
def jailhooks_policy_rules(ctx: "Context") -> "list[Contribution] | None":
    """Contribute rules to the jail's policy, whatever the firewall.

    Called once per phase when the core builds the jail's policy
    (``ctx.policy()``: prestart, poststart's check, sync, render, status,
    check, explain).  Return a list of ``Filter``, ``Nat`` and ``Rdr`` (from
    ``jailhooks``), or None; anything else is refused, naming the plugin.
    Every value is validated and copied again when the policy is built.  A
    ``Filter(users=True)`` applies to the jail's users (its UID block) only,
    and never widens what the jail itself may send.  The firewall applies
    blocks before passes whichever plugin they come from (policy.bands),
    naming each rule's plugin.  Must not run commands.

    The rules must follow from the config and the jail's facts alone: a
    prestart compiles them into the jail's plan, replayed while the config,
    the plugin's module and the rest of the plan's inputs are unchanged
    (plan.py).  Rules made from anything else (DNS, a database) call for a
    ``jailhooks_prestart`` implementation too, which makes every start ask.
    """


@hookspec
def jailhooks_pf_rules(ctx: "Context") -> "list[Contribution] | None":
    """The old name of ``jailhooks_policy_rules`` (deprecated in 0.4, removed
    in 0.5): its contributions are collected after those of the new name.
    Implement one of the two."""


@hookspec(firstresult=True)
def jailhooks_render(ctx: "Context", policy) -> "str | None":
    """``jailhooks render``: the firewall's rules for POLICY (a
    jailhooks.policy.Policy) as the text start would load, exactly.  The
    firewall plugin answers; the first answer wins.  Read-only."""


@hookspec
def jailhooks_plan(ctx: "Context") -> None:
    """``jailhooks render`` of a jail that has no lease yet: record in
    ``ctx.leases`` what this plugin's create or prestart would record there,
    so that the anchor rendered is the one start would load.  ``ctx.leases``
    is a copy of the registry that is never saved.  Run no command."""


@hookspec
def jailhooks_status(ctx: "Context") -> "dict | None":
    """Add keys to the jail's ``status`` record (``status --json`` prints them).
    A firewall plugin gives ``rule_counters``: a list of ``{"section",
    "rule", "packets", "bytes"}``, one per rule of the jail in order, which
    ``status -v JAIL`` prints under the section headings.  Read-only: run no
    command that changes anything."""


@hookspec
def jailhooks_columns(status: dict) -> "list[tuple[str, str]] | None":
    """``status``'s table and ``-H``: this plugin's columns for one jail, as
    (HEADER, text) pairs, from STATUS, the keys its own ``jailhooks_status``
    returned for that jail ({} when it returned none).  Give the same
    headers for every jail.  Read-only."""


@hookspec
def jailhooks_sync(ctx: "Context") -> None:
    """``jailhooks sync``: bring this running jail back to its desired state
    (after a pf reload, at boot).  Idempotent; every plugin runs, all errors
    are reported."""


@hookspec
def jailhooks_verify(ctx: "Context", seen: dict) -> "list[tuple[str, str]] | None":
    """``jailhooks check`` and ``sync``: prove, on the live host, that the
    firewall does with this running jail's packets what its policy says
    ("enforced", not just "loaded").  Return (level, line) per probe that
    fails ("error": a difference, or a block that cannot be proven) or is
    doubtful ("warning": a pass that cannot be proven), naming the rule that
    decided.  SEEN is one dict shared by every jail of the command, so a
    plugin reads the live ruleset once.  Read-only."""


@hookspec(firstresult=True)
def jailhooks_explain(ctx: "Context", packet: dict, rendered: bool) -> "dict | None":
    """``jailhooks explain``: what the firewall does with PACKET of the jail
    (keys direction "out"/"in", proto, dst, port, src or None, uid or None,
    iface or None), on the live ruleset, or with RENDERED on what start would
    load.  Return a dict with at least ``verdict`` ("pass"/"block"),
    ``proven`` (bool), ``rule`` (text or None), ``anchor``, ``section``,
    ``translation`` and ``why``; the first answer wins.  Read-only."""


@hookspec
def jailhooks_cleanup(settings: "Settings", host: "Host", running: "list[str]", dry_run: bool) -> "list[str] | None":
    """``jailhooks sync``, after every running jail was synced: remove what
    belongs to no running jail (e.g. orphan anchors).  Return lines saying
    what was removed."""


@hookspec
def jailhooks_check(settings: "Settings", host: "Host", registry, jail: "Jail | None") -> "list[tuple[str, str]] | None":
    """``jailhooks check [JAIL]``: report problems as (level, message) pairs,
    level ``"ok"``, ``"warning"`` or ``"error"``; an error makes check exit 1.
    ``jail`` is set when the admin asked about one jail.  Read-only."""
