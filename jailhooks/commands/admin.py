"""The admin commands: status, render, sync, check, release, the registry
and the plugins (the click CLI calls them; the hook path never loads them).
Each returns an exit code; errors are JailhooksError subclasses, turned into
an exit code by main.py."""
from __future__ import annotations

from typing import Any

from .. import validate
from ..app import App
from ..errors import DataError, ExitCode, JailhooksError, UsageError
from ..engine import address_conflicts
from ..pluginmanager import call_plugin
from ..types import Jail
from .run import report, require_known


# -- status -------------------------------------------------------------------------

def warn_rejected(app: App) -> None:
    for shown, why in app.host.rejected:
        app.warn(f"jls lists a jail jailhooks refuses, left alone: {shown}: {why}")


def running_jail(app: App, j: dict[str, Any]) -> Jail:
    """A jail as ``jls`` lists it; a VNET jail's addresses (which jls does not
    show) come from the other facts sources, as for ``run``."""
    if j["vnet"] and not (j["ip4"] or j["ip6"]):
        return app.engine.resolve(j["name"])
    return Jail(j["name"], j["path"], tuple(j["ip4"]), tuple(j["ip6"]), j["hostname"], j["jid"], "jls", j["vnet"])


def known_jails(app: App) -> dict[str, Jail]:
    """Running jails, jails with a lease, and jails in the config."""
    found: dict[str, Jail] = {}
    for j in app.host.jails():
        found[j["name"]] = running_jail(app, j)
    warn_rejected(app)
    names = set(app.settings.jails) | {lease.jail for lease in app.registry.leases()}
    for name in sorted(names - set(found)):
        found[name] = app.engine.resolve(name)
    return dict(sorted(found.items()))


def status_records(app: App, name: str | None) -> list[dict[str, Any]]:
    jails = known_jails(app)
    if name is not None:
        jail = jails.get(name) or app.engine.resolve(name)
        require_known(app, jail, up=False)
        jails = {name: jail}
    records = []
    for jail in jails.values():
        # jls's key names where jls has the value; each plugin's keys under its name
        rec: dict[str, Any] = {"name": jail.name, "jid": jail.jid, "running": jail.jid is not None,
                               "path": jail.path, "ip4.addr": list(jail.ip4), "ip6.addr": list(jail.ip6),
                               "vnet": "new" if jail.vnet else "inherit", "source": jail.source, "plugins": {}}
        ctx = app.context(jail, "status")
        for plugin, extra in app.plugins.collect("jailhooks_status", ctx=ctx):
            rec["plugins"][plugin] = extra
        records.append(rec)
    return records


STATUS_VERSION = "1"  # of the --json document; documented in README ("status --json")


def status(app: App, name: str | None, as_json: bool, tabs: bool = False, array: bool = False) -> int:
    records = status_records(app, name)
    code = _status(app, records, as_json, tabs, array)
    errors = [(r["name"], extra["policy_error"]) for r in records for extra in r["plugins"].values()
              if isinstance(extra, dict) and extra.get("policy_error")]
    for jail, error in errors:  # every jail was shown; the exit status says a policy cannot be rendered
        app.warn(f"status: jail {jail}: {error}")
    return int(ExitCode.DATAERR) if errors else code


def _status(app: App, records: list[dict[str, Any]], as_json: bool, tabs: bool, array: bool) -> int:
    if array:  # the flat array of 0.1 (one release, then removed)
        app.out.write(_json([{"jail": r["name"], "running": r["running"], "jid": r["jid"], "path": r["path"],
                              "ip4": r["ip4.addr"], "ip6": r["ip6.addr"],
                              **{k: v for extra in r["plugins"].values() for k, v in extra.items()}}
                             for r in records]))
        return 0
    if as_json:
        host = "simulated" if app.host.mode.startswith("simulated") else "freebsd"
        app.out.write(_json({"__version": STATUS_VERSION, "jailhooks-status": {"host": host, "jail": records}}))
        return 0
    headers: list[str] = ["JAIL", "JID"]
    rows = []
    for r in records:
        row = {"JAIL": r["name"], "JID": "-" if r["jid"] is None else str(r["jid"])}
        for plugin, caller in app.plugins.callers("jailhooks_columns"):
            for header, text in call_plugin(plugin, caller, status=r["plugins"].get(plugin, {})) or []:
                header, text = validate.shown(str(header), 16).upper(), validate.escaped(str(text), 80)
                if header not in headers:
                    headers.append(header)
                row[header] = text
        rows.append(row)
    # last, after every plugin's own: the packets the firewall plugin's rules passed and blocked
    # since they were loaded ("passed" and "blocked" in its record; bytes in --json and -v)
    if any(isinstance(extra, dict) and "passed" in extra for r in records for extra in r["plugins"].values()):
        headers += ["PASSED", "BLOCKED"]
    for r, row in zip(records, rows):
        found = next((extra for extra in r["plugins"].values() if isinstance(extra, dict) and "passed" in extra), None)
        if found is not None and r["running"]:
            row["PASSED"], row["BLOCKED"] = _packets(found.get("passed")), _packets(found.get("blocked"))
    rows = [[row.get(h, "-") for h in headers] for row in rows]
    if tabs:  # -H: no header, one tab-separated line per jail, as zfs and iocage do for scripts
        for row in rows:
            app.out.write("\t".join(row) + "\n")
        return 0
    if not rows:
        app.out.write("no jails known\n")
        return 0
    widths = [max(len(h), *(len(row[i]) for row in rows)) for i, h in enumerate(headers)]
    right = {"JID", "FIB", "PASSED", "BLOCKED"}  # numbers
    for line in [headers, *rows]:
        cells = [c.rjust(w) if h in right else c.ljust(w) for c, w, h in zip(line, widths, headers)]
        app.out.write(" ".join(cells).rstrip() + "\n")
    if app.verbose and len(records) == 1:  # status -v JAIL: what each of its rules counted, by section
        _rule_counters(app, records[0])
    if app.host.mode.startswith("simulated"):  # in the report itself, -q or not
        app.out.write("(the simulated host, not FreeBSD: nothing here reached a real firewall)\n")
    return 0


def _packets(counter: Any) -> str:
    packets = counter.get("packets") if isinstance(counter, dict) else None
    return str(packets) if isinstance(packets, int) and not isinstance(packets, bool) else "-"


def _rule_counters(app: App, record: dict[str, Any]) -> None:
    for extra in record["plugins"].values():
        counters = extra.get("rule_counters") if isinstance(extra, dict) else None
        if not isinstance(counters, list):
            continue
        app.out.write(f"\n{record['name']}: packets and bytes of each rule since it was loaded\n")
        section = None
        for c in counters:
            if not isinstance(c, dict):
                continue
            if c.get("section") != section:
                section = c.get("section")
                app.out.write(f"# {validate.escaped(str(section or '(no section)'), 80)}\n")
            app.out.write(f"{_plain(c.get('packets'))!s:>10} {_plain(c.get('bytes'))!s:>12}  "
                          f"{validate.escaped(str(c.get('rule')), 400)}\n")


def _json(doc: Any) -> str:
    import json

    return json.dumps(doc, indent=2) + "\n"


# -- render, sync, check, release, plugins ---------------------------------------------

def render(app: App, name: str, path: str | None, ip4: list[str] | None, ip6: list[str] | None) -> int:
    jail = app.engine.resolve(name, path, ip4, ip6)
    require_known(app, jail, up=True)  # as run: a typo renders nothing
    ctx = app.context(jail, "render")
    lease = ctx.lease
    if lease is None:  # the lease start would make, on a copy of the registry that is never saved
        from ..context import Context
        from ..registry import open_registry

        scratch = open_registry(app.settings, dry_run=True)
        try:
            plan = Context(jail, "render", app.settings, app.host, scratch, True)
            app.plugins.collect("jailhooks_plan", ctx=plan)
            lease = plan.lease
        finally:
            scratch.close()
    text = app.plugins.first("jailhooks_render", ctx=ctx, policy=ctx.policy(lease))
    if text is None:
        raise UsageError("render: no firewall plugin renders the policy (is the pf plugin disabled?)")
    app.out.write(str.__str__(text) if isinstance(text, str) else str(text))
    return 0


def sync(app: App) -> int:
    engine = app.engine
    code = 0
    running = app.host.jails()
    warn_rejected(app)
    synced = []
    for i, j in enumerate(running, 1):
        app.progress(f"sync: {i}/{len(running)} {validate.shown(j['name'], 40)}")
        outcome = engine.sync(running_jail(app, j))
        app.progress(None)
        report(app, outcome)
        code = code or outcome.exit_code
        if outcome.ok:
            synced.append(j["name"])
    for plugin, lines in app.plugins.collect("jailhooks_cleanup", settings=app.settings, host=app.host,
                                             running=[j["name"] for j in running], dry_run=app.dry_run):
        for line in lines:
            app.changed(f"sync: {plugin}: {line}")
    if not app.dry_run:  # every jail reloaded: read the firewall once and prove each jail's policy
        app.progress("sync: proving every jail's policy on the live firewall")
        from .. import plan
        from ..host import Recording

        app.host.recording = recording = Recording()  # what the proof reads
        try:
            problems = [msg for level, _, msg in enforced(app, None, running) if level == "error"]
        finally:
            app.host.recording = None
        app.progress(None)
        for name in synced:  # each anchor holds what sync loaded: how pf prints it, for replayed starts
            if not any(msg.startswith(f"jail {name}:") for msg in problems):
                plan.keep_proven_listing(app.settings, name, recording.reads)
        for msg in problems:
            app.warn(f"sync: {msg}")
        code = code or (ExitCode.FAILED if problems else 0)
    app.say(f"sync: {len(running)} running jail(s)")
    return int(code)


def orphaned_leases(app: App) -> list[str]:
    """Leases of this host's jails that nothing knows any more: not running,
    not in a manager's files, not in the config."""
    reg = app.registry
    running = {j["name"] for j in app.host.jails()}
    found = []
    for lease in reg.leases():
        if reg.fleet and lease.host != reg.host_name:
            continue  # another host's jail
        if lease.jail not in running and app.engine.resolve(lease.jail).source == "none":
            found.append(f"lease of {lease.jail} ({lease.uid_first}-{lease.uid_last}) is orphaned: the jail is "
                         f"neither running nor configured (end it with: jailhooks release {lease.jail})")
    return found


def enforced(app: App, only: Jail | None, running: list[dict[str, Any]] | None = None) -> list[tuple[str, str, str]]:
    """Each running jail's policy, proven on the live firewall (jailhooks_verify).
    RUNNING: what jls listed, when the caller has just read it."""
    running = app.host.jails() if running is None else running
    jails = ([only] if only.jid is not None else []) if only is not None else [running_jail(app, j) for j in running]
    seen: dict = {}
    findings = [("error", "jls", f"running jail {shown} has no rules: jailhooks refuses its name ({why}); "
                                 "it runs unfiltered") for shown, why in (app.host.rejected if only is None else [])]
    for jail in jails:
        findings += [("error", "core", line) for line in address_conflicts(jail, running, app.settings)]
    for jail in jails:
        ctx = app.context(jail, "check")
        problems = []
        try:
            for plugin, found in app.plugins.collect("jailhooks_verify", ctx=ctx, seen=seen):
                problems += [(_level(level), plugin, validate.escaped(line)) for level, line in found or []]
        except JailhooksError as exc:
            problems.append(("error", "firewall", f"cannot be proven: {validate.escaped(str(exc))}"))
        findings += [(level, plugin, f"jail {jail.name}: {'not enforced' if level == 'error' else 'not proven'}: "
                                     f"{line}") for level, plugin, line in problems]
        if not problems:
            findings.append(("ok", "firewall", f"jail {jail.name}: its policy is enforced by the live ruleset"))
        elif not any(level == "error" for level, _, _ in problems):
            findings.append(("ok", "firewall", f"jail {jail.name}: what its policy blocks is blocked by the live "
                                               "ruleset (some passes not proven: the warnings above)"))
    return findings


def _level(level: Any) -> str:
    """A plugin's level, as one of ours (anything unknown is an error),
    copied first: a str subclass's __eq__ cannot pass an error off as ok."""
    level = validate.exact(level)
    return level if isinstance(level, str) and level in ("ok", "warning", "error") else "error"


def _plain(value: Any) -> Any:
    """A plugin's answer as exact built-in values (dict, list, str, int,
    bool, None), before anything formats it."""
    if isinstance(value, dict):
        return {str.__str__(k) if isinstance(k, str) else repr(k): _plain(v) for k, v in dict.items(value)}
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in list(value)]
    value = validate.exact(value)
    return value if value is None or isinstance(value, (str, int, bool)) else repr(value)


def check(app: App, name: str | None, as_json: bool = False) -> int:
    if name == "":
        raise UsageError("check: the jail name is empty (leave it out to check every jail)")
    jail = app.engine.resolve(name) if name else None
    if jail is not None:
        require_known(app, jail, up=False)
    findings: list[tuple[str, str, str]] = [("ok", "config", f"{app.settings.source}: valid")]
    problems = app.registry.check()
    findings += [("error", "registry", p) for p in problems] or [("ok", "registry", "integrity check passed")]
    for plugin, caller in app.plugins.callers("jailhooks_check"):
        try:  # one plugin that cannot finish is one finding, not the end of the report
            found = call_plugin(plugin, caller, settings=app.settings, host=app.host, registry=app.registry,
                                jail=jail) or []
        except JailhooksError as exc:
            found = [("error", str(exc))]
        findings += [(_level(level), plugin, validate.escaped(msg)) for level, msg in found]
    findings += [("warning", "plugins", f"plugin {plugin} implements jailhooks_pf_rules, renamed "
                                        "jailhooks_policy_rules in 0.4 (the old name goes in 0.5)")
                 for plugin, _ in app.plugins.callers("jailhooks_pf_rules")]
    findings += enforced(app, jail)
    findings += [("warning", "registry", line) for line in orphaned_leases(app)]
    failed = any(level == "error" for level, _, _ in findings)
    if as_json:
        app.out.write(_json({"__version": STATUS_VERSION, "jailhooks-check": {
            "ok": not failed, "finding": [{"level": level, "source": who, "message": msg} for level, who, msg in findings]}}))
    else:  # one report, one stream; the exit status says whether anything is wrong
        for level, who, msg in findings:
            if app.quiet and level == "ok":
                continue  # -q: only the problems (cron mails whatever a job prints)
            app.out.write(validate.escaped(f"{level:<7} {who}: {msg}", 4000) + "\n")
    return int(ExitCode.FAILED) if failed else 0


def explain(app: App, name: str, proto: str, dest: str, inbound: bool, peer: str | None, uid: int | None,
            user: str | None, iface: str | None, rendered: bool, as_json: bool) -> int:
    """What the firewall does with one packet of the jail, and the rule that decides."""
    answer = explain_answer(app, name, proto, dest, inbound, peer, uid, user, iface, rendered)
    if as_json:
        app.out.write(_json({"__version": STATUS_VERSION, "jailhooks-explain": answer}))
        return 0
    p = answer["packet"]
    who = "" if p["uid"] is None else f", uid {p['uid']}"
    src = p["src"] or "(the host's address)"
    app.out.write(f"packet:     {p['proto']} {src} -> {p['dst']}" + (f" port {p['port']}" if p["port"] else "")
                  + f", {p['direction']}{' on ' + p['iface'] if p['iface'] else ''}{who}\n")
    if answer.get("translation"):
        seen = answer["seen_as"]
        went = f"{seen.get('src')} -> {seen.get('dst')} port {seen.get('port')}"
        app.out.write(f"translated: {validate.escaped(answer['translation'])} (from there on: "
                      f"{validate.escaped(went)})\n")
    verdict = answer["verdict"] + (" (keeps state: replies pass)" if answer.get("state") else "")
    app.out.write(f"verdict:    {verdict if answer['proven'] else verdict + ' (not proven)'}\n")
    app.out.write(f"decided by: {validate.escaped(answer['why'])}\n")
    if answer.get("section"):
        origin = f", from plugin {answer['plugin']}" if answer.get("plugin") else ""
        app.out.write(f"section:    {answer['section']}{origin}\n")
    app.out.write(f"ruleset:    {'what start would load (rendered), behind the hooks alone' if rendered else 'the live host'}\n")
    return 0


def sim_send(app: App, name: str, proto: str, dest: str, inbound: bool, peer: str | None, uid: int | None) -> int:
    """``sim send``: one packet through the simulated host's live rules; it is
    logged (the simulated pflog, or the security log under ipfw) when its
    rules log."""
    if not app.host.mode.startswith("simulated"):
        raise UsageError("sim send only drives the simulated host")
    answer = explain_answer(app, name, proto, dest, inbound, peer, uid, None, None, False)
    logged = app.host.runner.log_packet(answer)
    p = answer["packet"]
    line = (f"{answer['verdict']}{'' if answer['proven'] else ' (not proven)'}: {p['proto']} "
            f"{p['src'] or '(the host)'} -> {p['dst']}{':' + str(p['port']) if p['port'] else ''} "
            f"({p['direction']}{', uid ' + str(p['uid']) if p['uid'] is not None else ''}); "
            f"{answer['why']}{'; logged to ' + logged if logged else ''}")
    app.out.write(validate.escaped(line, 1000) + "\n")  # the answer is a plugin's
    return 0


def explain_answer(app: App, name: str, proto: str, dest: str, inbound: bool, peer: str | None, uid: int | None,
                   user: str | None, iface: str | None, rendered: bool) -> dict:
    import ipaddress

    from .. import jailfs

    jail = app.engine.resolve(name)
    require_known(app, jail, up=False)
    proto = {"icmp6": "ipv6-icmp"}.get(proto, proto)
    if proto not in ("tcp", "udp", "icmp", "ipv6-icmp"):
        raise UsageError(f"explain: protocol {proto!r} is not one of tcp, udp, icmp, icmp6")
    host, port = _dest(dest, proto)
    try:
        if peer is not None:
            peer = str(ipaddress.ip_address(peer))
    except ValueError:
        raise UsageError(f"explain: --from {peer!r} is not an IP address") from None
    if user is not None:
        found = [u for n, u in jailfs.accounts(jail.path, "etc/passwd") if n == user] if jail.path else []
        if not found:
            raise DataError(f"explain: jail {jail.name} has no user {validate.shown(user)} in its etc/passwd")
        uid = found[0]
    packet = {"direction": "in" if inbound else "out", "proto": proto, "dst": host, "port": port,
              "src": peer if inbound else None, "uid": None if inbound else (0 if uid is None else uid),
              "iface": iface}
    if inbound and packet["src"] is None:
        packet["src"] = "2001:db8:ffff::7" if ":" in host else "198.51.100.7"
    answer = app.plugins.first("jailhooks_explain", ctx=app.context(jail, "explain"), packet=packet,
                               rendered=rendered)
    if answer is None:
        raise UsageError("explain: no plugin explains packets (is the pf plugin disabled?)")
    return {"jail": jail.name, **_plain(answer)}


def firewall_log(app: App, jails: list[str], since: str | None, as_json: bool, follow: bool = False,
                 count: int | None = None) -> int:
    """``jailhooks log``: what the jails' rules logged, one line per packet;
    with FOLLOW, what they log from now on, as it happens (after what was
    logged since SINCE, when given), until interrupted or COUNT lines."""
    start = _since(since)
    for name in jails:
        _named(name, "log")
    if follow:
        return _follow(app, jails, start, as_json, count)
    app.progress("log: reading the firewall's log")
    records = _logged(app, start)
    app.progress(None)
    records = [r for r in records if not jails or r.get("jail") in jails][:count]
    if as_json:
        app.out.write(_json({"__version": STATUS_VERSION, "jailhooks-log": records}))
        return 0
    for r in records:
        app.out.write(_log_line(r))
    return 0


def _logged(app: App, start: float | None, command: str = "log") -> list[dict]:
    records = app.plugins.first("jailhooks_firewall_log", settings=app.settings, host=app.host,
                                registry=app.registry, since=start)
    if records is None:
        raise UsageError(f"{command}: the firewall backend keeps no log that jailhooks reads")
    return _plain(records)


def _each(live: Any) -> Any:
    """The records of a plugin's live log, each copied into built-in values;
    what is not an Exception (sys.exit() ...) becomes a one-line error."""
    items = iter(live)
    while True:
        try:
            record = next(items)
        except StopIteration:
            return
        except (Exception, KeyboardInterrupt):
            raise
        except BaseException as exc:
            raise JailhooksError(f"log --follow: the firewall plugin raised {type(exc).__name__}; stopped") \
                from None
        yield _plain(record)


def _follow(app: App, jails: list[str], start: float | None, as_json: bool, count: int | None) -> int:
    """``log --follow``: the live log, one line (with --json one JSON object)
    per packet, each written out at once.  SIGINT or SIGTERM ends it, exit 0.
    With --since, what the file holds comes first; a packet already shown
    from it is not shown again."""
    import signal

    stopped = []

    def stop(signum, frame):
        stopped.append(signum)
        raise KeyboardInterrupt

    previous = {sig: signal.signal(sig, stop) for sig in (signal.SIGINT, signal.SIGTERM)}
    live = None
    try:
        live = app.plugins.first("jailhooks_firewall_follow", settings=app.settings, host=app.host,
                                 registry=app.registry)
        if live is None:
            raise UsageError("log --follow: the firewall backend cannot follow its log as it is written; "
                             "run log without --follow")
        what = _plain(getattr(live, "what", None))  # what it follows, as the plugin names it
        what = validate.shown(what, 120) if isinstance(what, str) else "the firewall's log"
        backlog = _logged(app, start) if start is not None else []
        shown, seen = 0, set()
        for r in backlog:
            seen.add(_identity(r))
        if not app.quiet:
            app.err.write(f"jailhooks: log: following {what} (Ctrl-C to stop)\n")
            app.err.flush()

        def emit(r: dict) -> bool:
            nonlocal shown
            if jails and r.get("jail") not in jails:
                return False
            app.out.write(_json_line(r) if as_json else _log_line(r))
            app.out.flush()
            shown += 1
            return count is not None and shown >= count

        if any(emit(r) for r in backlog):
            return 0
        for r in _each(live):
            if _identity(r) in seen:
                continue
            if emit(r):
                break
    except KeyboardInterrupt:
        if not stopped:  # not our signal: a plugin raised it
            raise JailhooksError("log --follow: the firewall plugin raised KeyboardInterrupt; stopped") from None
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)
        if live is not None:
            live.close()
    return 0


def _identity(r: dict) -> tuple:
    return tuple(r.get(k) for k in ("time", "jail", "rule", "src", "dst", "port", "proto", "verdict"))


def _json_line(r: dict) -> str:
    import json

    return json.dumps({"__version": STATUS_VERSION, **r}, sort_keys=True) + "\n"


def _log_line(r: dict) -> str:
    """One record as a line; every field is a plugin's, so each is escaped."""
    import datetime

    def f(key: str, limit: int = 80) -> str:
        return validate.escaped(r.get(key) if r.get(key) is not None else "-", limit)

    when = datetime.datetime.fromisoformat(r["time"]).astimezone().strftime("%Y-%m-%d %H:%M:%S")
    port = f":{f('port')}" if r.get("port") else ""
    rule = f"; rule: {f('rule', 600)}" if r.get("rule") else f"; ruleset {f('ruleset')}"
    section = f" ({f('section')})" if r.get("section") else ""
    return (f"{when} {f('jail')} {f('user')} {f('verdict')} {f('direction')} on {f('interface')} {f('proto')} "
            f"{f('src')} -> {f('dst')}{port}{rule}{section}\n")


LEARNED = "5. learn"  # the section of the logged pass that learn mode puts in place of the default block


def suggest(app: App, name: str, since: str | None) -> int:
    """``jailhooks suggest JAIL``: the flows the jail's learn mode logged, as
    an allow list in the config's own TOML, grouped by protocol, destination
    and port, with the packets and the users seen as comments."""
    _named(name, "suggest")
    flows: dict[tuple, dict] = {}
    for r in _logged(app, _since(since), "suggest"):
        if r.get("jail") != name or r.get("verdict") != "pass" or r.get("direction") != "out" \
                or not (r.get("section") or "").startswith(LEARNED) or r.get("proto") not in ("tcp", "udp", "icmp"):
            continue
        port = r.get("port") if r["proto"] in ("tcp", "udp") else 0
        if not isinstance(port, int) or isinstance(port, bool) or not 0 <= port <= 65535:
            raise DataError(f"suggest: the log gives {validate.shown(str(port), 40)} as a port, not a port number")
        flow = flows.setdefault((r["proto"], str(ipaddress_of(r["dst"])), port), {"packets": 0, "users": set()})
        flow["packets"] += 1
        flow["users"].add(validate.shown(str(r.get("user")), 32))  # into a TOML comment: no line break
    app.out.write(f"# jailhooks suggest {name}: {len(flows)} flow(s) from "
                  f"{sum(f['packets'] for f in flows.values())} packet(s) logged in learn mode"
                  f"{' since ' + validate.shown(since, 40) if since else ''}\n")
    if not flows:
        return 0
    app.out.write(f"# add to allow in [jail.{name}.pf], then set mode = \"enforce\" and restart the jail:\n")
    app.out.write("allow = [\n")
    for (proto, dst, port), flow in sorted(flows.items()):
        entry = f'{{ proto = "{proto}", to = "{dst}"' + (f", port = {port}" if port else "") + " }"
        users = ", ".join(sorted(flow["users"]))
        app.out.write(f"  {entry},  # {flow['packets']} packet(s); users: {users}\n")
    app.out.write("]\n")
    return 0


def _named(name: str, command: str) -> None:
    try:
        validate.jail_name(name)
    except ValueError as exc:
        raise DataError(f"{command}: {exc}") from None


def ipaddress_of(text: str):
    import ipaddress

    try:
        return ipaddress.ip_address(text)
    except ValueError:
        raise DataError(f"suggest: the log names {validate.shown(text, 40)} as a destination, not an address") \
            from None


def _since(since: str | None) -> float | None:
    """--since: an ISO 8601 time (2026-12-03T10:00) or an interval back from
    now (30m, 2h, 1d)."""
    import datetime
    import time

    if since is None:
        return None
    units = {"s": 1, "m": 60, "h": 3600, "d": 86400}
    if since[:-1].isdigit() and since[-1:] in units:
        return time.time() - int(since[:-1]) * units[since[-1]]
    try:
        return datetime.datetime.fromisoformat(since).timestamp()
    except ValueError:
        raise UsageError(f"log: --since {validate.shown(since, 40)} is neither a time (2026-12-03T10:00) nor an "
                         "interval (30m, 2h, 1d)") from None


def _dest(dest: str, proto: str) -> tuple[str, int]:
    """DEST[:PORT], [V6]:PORT or a bare IPv6 address."""
    import ipaddress

    host, port = dest, ""
    if dest.startswith("["):
        host, _, port = dest[1:].partition("]")
        port = port[1:] if port.startswith(":") else port
    elif dest.count(":") == 1:
        host, _, port = dest.partition(":")
    try:
        host = str(ipaddress.ip_address(host))
    except ValueError:
        raise UsageError(f"explain: {dest!r} is not ADDRESS[:PORT]") from None
    if proto in ("tcp", "udp"):
        if not port.isdigit() or not 0 < int(port) < 65536:
            raise UsageError(f"explain: {proto} needs a port: {dest!r} is not ADDRESS:PORT (1-65535)")
        return host, int(port)
    if port:
        raise UsageError(f"explain: {proto} has no ports ({dest!r})")
    return host, 0


def release(app: App, name: str, force: bool) -> int:
    from ..engine import canonical, checked_name

    name = canonical(app.settings, checked_name(name))
    with app.engine.jail_lock(name):
        if app.host.jail(name) is not None and not force:
            raise UsageError(f"jail {name} is running: its UIDs would be handed to another jail "
                             "(stop it first, or --force)")
        if app.registry.get(name) is not None:  # each plugin gives back what the lease holds outside the registry
            for failure in app.engine.release(app.engine.resolve(name)).failures:
                app.warn(f"{name}: {failure.plugin}: {failure.message}")
        lease = app.registry.release(name)
    if lease is None:
        app.warn(f"{name}: no lease")
        return int(ExitCode.DATAERR)
    app.changed(f"{name}: released UIDs {lease.uid_first}-{lease.uid_last}"
            + (f" and FIB {lease.fib}" if lease.fib is not None else ""))
    return 0


def registry_migrate(app: App) -> int:
    reg = app.registry
    if not hasattr(reg, "migrate"):
        app.say("registry: SQLite migrates itself (it belongs to this host alone)")
        return 0
    before, after = reg.migrate()
    app.changed(f"registry {reg.shown}: schema {before} -> {after}" if before != after
            else f"registry {reg.shown}: schema {after}, up to date")
    return 0


def registry_export(app: App) -> int:
    import json

    app.out.write(json.dumps({"jailhooks_registry": 1, "leases": app.registry.export()}, indent=2) + "\n")
    return 0


EXPORT_VERSION = 1  # "jailhooks_registry" in an export


def registry_import(app: App, data: bytes | str, source: str, host: str | None = None) -> int:
    import json

    try:
        text = data.decode("utf-8") if isinstance(data, bytes) else data
        doc = json.loads(text)
        if not isinstance(doc, dict) or doc.get("jailhooks_registry") != EXPORT_VERSION:
            raise ValueError(f"not version {EXPORT_VERSION} of a jailhooks registry export "
                             "(\"jailhooks_registry\": 1)")
        leases = doc.get("leases")
        if not isinstance(leases, list):
            raise ValueError("no \"leases\" list")
    except UnicodeDecodeError:
        raise DataError(f"{validate.escaped(source)}: not UTF-8 text; nothing was imported") from None
    except RecursionError:
        raise DataError(f"{validate.escaped(source)}: nested too deeply to be an export; nothing was imported") from None
    except (ValueError, KeyError, TypeError) as exc:
        raise DataError(f"{validate.escaped(source)}: not a jailhooks registry export "
                        f"({validate.escaped(str(exc), 200)}); nothing was imported") from None
    from ..registry.sql import checked_lease

    for item in leases:  # each as an allocation would check it, then against this host's pool
        in_pool(app, checked_lease(item, "import"), "import")
    if host is not None:
        from ..config import host_label

        try:
            host_label(host)
        except ValueError as exc:
            raise UsageError(f"registry import --host: {exc}") from None
        # an export carries the host it was made on; in a fleet, the leases
        # must belong to the host the jails now run on
        leases = [{**item, "host": host} if isinstance(item, dict) else item for item in leases]
    added, same = app.registry.import_leases(leases)
    app.changed(f"registry: {added} lease(s) imported, {same} already there")
    return 0


def in_pool(app: App, lease: Any, what: str) -> None:
    """LEASE (from outside, already through checked_lease: an export, a
    jail's own marker) lies within the pool [uids] first..last for its jail
    and holds no reserved id: a forged "UIDs 1000-1999" would make the
    anchor's users' rules match host users."""
    try:
        pool = app.settings.for_jail("uids", lease.jail)
    except KeyError:  # no uids section: the plugin is disabled
        return
    first, last = lease.uid_first, lease.uid_last
    if pool.get("range") and [first, last] == list(pool["range"]):
        return  # the jail's own fixed range ([jail.NAME.uids] range)
    if not pool["first"] <= first <= last <= pool["last"]:
        raise DataError(f"{what}: lease of {lease.jail}: UIDs {first}-{last} lie outside the pool "
                        f"[uids] first..last ({pool['first']}-{pool['last']}); nothing was changed")
    reserved = [f"{uid} ({name})" for uid, name in sorted(validate.RESERVED_UIDS.items()) if first <= uid <= last]
    if reserved:
        raise DataError(f"{what}: lease of {lease.jail}: UIDs {first}-{last} hold reserved ids "
                        f"{', '.join(reserved)}; nothing was changed")


def registry_recover(app: App, names: list[str]) -> int:
    """Leases rebuilt from the marker jailhooks keeps in each jail's etc/pw.conf."""
    from ..claims import claim_of
    from ..registry.sql import checked_lease

    paths = {name: jc.path for name, jc in app.settings.jails.items()}
    paths.update({j["name"]: j["path"] for j in app.host.jails()})
    for name in names:
        paths[name] = app.engine.resolve(name).path
    claims, problems = [], []
    for name, path in sorted(paths.items()):
        claim = claim_of(path)
        if claim is None:
            continue
        if claim["jail"] != name:  # a jail's files are its root's: it may claim anything
            problems.append(f"jail {name}: its etc/pw.conf claims the block of jail "
                            f"{validate.shown(str(claim['jail']))}; not recovered")
            continue
        try:
            lease = checked_lease(claim, f"jail {name}'s etc/pw.conf")
            in_pool(app, lease, f"jail {name}'s etc/pw.conf")
            claims.append(lease)
        except DataError as exc:
            problems.append(str(exc))
    claims.sort(key=lambda lease: lease.uid_first)
    for a, b in zip(claims, claims[1:]):
        if b.uid_first <= a.uid_last:
            problems.append(f"jails {a.jail} and {b.jail} both claim UIDs {b.uid_first}-{min(a.uid_last, b.uid_last)}")
    if problems:
        for problem in problems:
            app.warn(f"registry recover: {problem}")
        raise DataError(f"registry recover: {len(problems)} problem(s); nothing was changed")
    records = [{"jail": c.jail, "uid_first": c.uid_first, "uid_last": c.uid_last} for c in claims]
    added, same = app.registry.import_leases(records)
    app.changed(f"registry recover: {added} lease(s) rebuilt from the jails' etc/pw.conf, {same} already there "
            "(FIBs are allocated again at each jail's next start)")
    return 0


def lease_move(app: App, jail: str, to_host: str) -> int:
    from ..config import host_label

    try:
        validate.jail_name(jail)
        host_label(to_host)
    except ValueError as exc:
        raise DataError(str(exc)) from None
    if not to_host:
        raise UsageError("lease move: --to HOST is required")
    lease = app.registry.move(jail, to_host)
    app.changed(f"{jail}: lease (UIDs {lease.uid_first}-{lease.uid_last}) now held by {to_host}; its FIB stays behind")
    return 0


def plugins_report(app: App, as_json: bool) -> int:
    """Every plugin, broken ones included (with their error; exit 78 then)."""
    rows = [{"name": i.name, "source": i.source, "module": i.module, "hooks": i.hooks, "error": i.error,
             "disabled": i.disabled} for i in app.plugins.infos]
    if as_json:
        import json

        app.out.write(json.dumps(rows, indent=2) + "\n")
    else:
        for r in rows:
            detail = (f"BROKEN: {r['error']}" if r["error"] else "disabled in the config" if r["disabled"]
                      else ", ".join(r["hooks"]))
            app.out.write(f"{r['name']:<14} {r['source']}\n    {detail}\n")
    return int(ExitCode.CONFIG) if any(r["error"] for r in rows) else 0
