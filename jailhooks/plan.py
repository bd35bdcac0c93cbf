"""Compiled starts: what a jail's prestart does, computed by the full path and
replayed by the next prestart while nothing it depends on has changed.

The full path (config, plugins, registry, policy, rendering, proof) costs
several times a hand-written sh hook.  Yet for a jail whose inputs did not
change, a start does the same few things every time: load the same anchor
text, set the same routes.  So a successful prestart of one jail records them
(the host layer's Recording: each step a host method and its arguments, and
the answers the proof read), with a fingerprint of every input:

* the config file, every sys.path directory (a distribution installed,
  upgraded or removed adds or deletes its *-info there), the file of every
  loaded plugin module, the manager files the jail's facts came from;
* the registry's change stamp (registry/sqlite.py replaces it in every
  transaction that changes a lease or FIB, before it commits) and its
  database file (replaced by hand from a backup);
* the files prestart writes into the jail (etc/pw.conf, etc/adduser.conf),
  looked at without following a link the jail could plant.

A fingerprint is a file's (device, inode, size, mtime, ctime, mode): an edit,
a replacement and a touch all change the ctime, which no one can set back.
An input changed less than RACY_SECONDS before the compile could change again
within the same timestamp, so such a start writes no plan (git's "racily
clean" rule); the next full start does.

replay.py checks the fingerprint and replays; anything else (no plan, an input
changed, the jail runs, an address is taken, a step fails, pf's ruleset is not
the one the proof was made over) takes the full path, which fails closed and
writes a new plan.  Not compiled, so always the full path: a start with a site
plugin's phase or facts hook (ASKED_EVERY_TIME), a step the host layer
cannot replay (ipfw, a FIB flush on a new FIB, a live table the proof read), a
shared (PostgreSQL) registry, whose leases another host can change.

A plan is marshal data (no code, no import), root's own file in
STATE_DIR/plans, read only when owned by this user and not writable by others.
"""
from __future__ import annotations

import errno
import os
import stat
import sys

TYPE_CHECKING = False  # no typing at run time (main.py)
if TYPE_CHECKING:
    from typing import Any, Optional

# A site plugin implementing one of these works, or finds facts, at every
# start: its jails always take the full path.  Its rules (policy_rules) are
# compiled in, as a function of the config and the jail's facts.
ASKED_EVERY_TIME = {"jailhooks_prestart", "jailhooks_created", "jailhooks_poststart", "jailhooks_jail_facts"}
FORMAT = 1
RACY_SECONDS = 1.0


def fingerprint(path: str) -> Optional[tuple]:
    """(device, inode, size, mtime, ctime, mode) of PATH, or None if it is not there."""
    try:
        return _identity(os.stat(path))
    except OSError:
        return None


def _identity(st: os.stat_result) -> tuple:
    return (st.st_dev, st.st_ino, st.st_size, st.st_mtime_ns, st.st_ctime_ns, st.st_mode)


def fingerprint_in(root: str, relpath: str) -> Optional[tuple]:
    """fingerprint() of a file inside a jail, reached without following a
    link; ("unsafe",) when a component is a link or cannot be opened."""
    from .jailfs import stat_in

    try:
        st = stat_in(root, relpath)
    except Exception:
        return ("unsafe",)
    return None if st is None else _identity(st)


def plans_dir(state_dir: str) -> str:
    return os.path.join(state_dir, "plans")


# -- the proof's key ---------------------------------------------------------------------------------------

def jail_blocks(listing: str, parent: str, own: Optional[str]) -> tuple[str, dict[str, str]]:
    """Split a ``pfctl -a '*' -s rules|nat`` listing: (the listing without
    the blocks of the jail anchors below PARENT's wildcard other than OWN's,
    {anchor component: its block}).  Jail anchors come and go as jails start
    (at boot, one after the other), so they are not part of a jail's proof
    key; instead each must hold what jailhooks itself loaded there (see
    others_hold_their_own), which matches only its own jail's addresses and
    UID block.
    Everything else (the main ruleset, every other anchor, OWN's block) stays."""
    head = f'"{parent}/*"'
    out: list[str] = []
    blocks: dict[str, list[str]] = {}
    wildcard: Optional[int] = None  # indentation of the open "PARENT/*" call
    inside: Optional[tuple[str, int, list[str]]] = None  # the jail block being read: name, indentation, lines
    for line in listing.splitlines():
        indent = len(line) - len(line.lstrip(" "))
        body = line.strip()
        if inside is not None:
            name, opened, lines = inside
            if indent == opened and body == "}":
                inside = None
            else:
                lines.append(line)
            if name == own:
                out.append(line)
            continue
        if wildcard is not None and indent == wildcard and body == "}":
            wildcard = None
        elif wildcard is None and head in body.split(" ")[:2] and body.endswith("{"):
            wildcard = indent
        elif wildcard is not None and indent == wildcard + 2 and body.endswith("{"):
            words = body.split(" ")
            name = words[1].strip('"') if len(words) > 1 else ""
            inside = (name, indent, blocks.setdefault(name, []))
            if name != own:
                continue
        out.append(line)
    return "\n".join(out), {name: "\n".join(lines) for name, lines in blocks.items()}


def proof_key(reads: dict[str, Any], parent: str, own: str) -> Optional[tuple[tuple, dict[str, dict[str, str]]]]:
    """What the proof of a jail's policy depends on, from the answers it
    read: (key, the jail anchors' blocks by class), the key being pf enabled,
    the filter and nat trees without other jails' anchors (see jail_blocks)
    and the skipped interfaces.  None if the proof read less than that."""
    try:
        rules = jail_blocks(reads["pf_show_all rules"], parent, own)
        nat = jail_blocks(reads["pf_show_all nat"], parent, own)
        return (reads["pf_running"], rules[0], nat[0], tuple(reads["pf_skipped"])), {"rules": rules[1], "nat": nat[1]}
    except KeyError:
        return None


def listed_path(state_dir: str, component: str) -> Optional[str]:
    """Where a jail anchor's printed form is kept (beside its loaded text), or
    None for a component that cannot be a file name of ours."""
    if not component or component in (".", "..") or "/" in component or "\0" in component:
        return None
    return os.path.join(state_dir, "anchors", f"{component}.listed")


def keep_listed(state_dir: str, component: str, listed: dict[str, str]) -> None:
    """Keep how pf prints what jailhooks loaded into COMPONENT's anchor."""
    import marshal

    from .jailfs import replace_file

    path = listed_path(state_dir, component)
    if path is not None:
        os.makedirs(os.path.dirname(path), mode=0o700, exist_ok=True)
        replace_file(path, marshal.dumps(listed), 0o600)


def keep_proven_listing(settings: Any, jail: str, reads: dict[str, Any]) -> None:
    """After a start or sync proved JAIL's anchor: keep how pf printed it."""
    from .validate import anchor_component

    if "pf" not in settings.sections:
        return  # another firewall
    component = anchor_component(jail)
    proven = proof_key(reads, settings.section("pf")["parent"], component)
    if proven is not None and proven[1]["rules"].get(component):
        keep_listed(settings.state_dir, component, {kind: found.get(component, "") for kind, found in proven[1].items()})


def others_hold_their_own(blocks: dict[str, dict[str, str]], parent: str, own: str, state_dir: str) -> str:
    """"" if every jail anchor in BLOCKS (proof_key's, by class) other than
    OWN's holds what jailhooks loaded there (as pf printed it then), else
    what does not."""
    import marshal

    known: dict[str, Optional[dict]] = {}
    for kind, found in blocks.items():
        for name, block in found.items():
            if name == own:
                continue
            if name not in known:
                path = listed_path(state_dir, name)
                try:
                    with open(path, "rb") as fh:  # type: ignore[arg-type]
                        known[name] = marshal.load(fh)
                except (OSError, TypeError, ValueError, EOFError):
                    known[name] = None
            listed = known[name]
            if not isinstance(listed, dict) or listed.get(kind) != block:
                return f"anchor {parent}/{name} holds rules jailhooks did not load there"
    return ""


# -- compiling ---------------------------------------------------------------------------------------------

def compile_plan(app: Any, jail: Any, recording: Any, outcome: Any, started: float) -> Optional[str]:
    """Write JAIL's plan from a successful prestart's RECORDING; the reason
    when none is written (the next start then takes the full path too)."""
    settings = app.settings
    why = _not_compiled(app, jail, recording)
    if why:
        forget(settings.state_dir, jail.name)
        return why
    from .validate import anchor_component

    parent = settings.section("pf")["parent"]
    component = anchor_component(jail.name)
    proven = proof_key(recording.reads, parent, component)
    if proven is None:
        forget(settings.state_dir, jail.name)
        return "the start proved nothing over pf's rules"
    from .managers import files_read  # the manager files the jail's facts came from
    from .registry.sqlite import DB_NAME, STAMP

    # the stamp changes with every lease; the database file itself, when it is replaced by hand
    registry = [os.path.join(settings.state_dir, STAMP), os.path.join(settings.state_dir, DB_NAME)]
    inputs = [settings.source, *registry, *(p or "." for p in sys.path),
              *plugin_files(app.plugins), *files_read()]
    in_jail = []
    if jail.path and settings.sections.get("uids", {}).get("write_pw_conf") and os.path.realpath(jail.path) != "/":
        in_jail = ["etc/pw.conf", "etc/adduser.conf"]
    plan = {
        "format": FORMAT, "python": sys.hexversion, "jail": jail.name, "sys.path": list(sys.path),
        "inputs": [(p, fingerprint(p)) for p in dict.fromkeys(inputs)],
        "jail_files": (jail.path, [(rel, fingerprint_in(jail.path, rel)) for rel in in_jail]),
        "host": {k: settings.host[k] for k in ("mode", "commands", "timeout", "state_dir", "lock_timeout",
                                               "syslog_facility")},
        "addresses": list(jail.addresses),
        "fib": _fib(app, jail),
        "steps": list(recording.steps),
        "parent": parent,
        "component": component,
        "proof": proven[0],
        "notes": [(phase, plugin, text) for phase, plugin, text in outcome.notes],
    }
    racy = started - RACY_SECONDS
    for path, print_ in plan["inputs"] + plan["jail_files"][1]:
        if print_ is not None and len(print_) > 1 and max(print_[3], print_[4]) >= racy * 1e9:
            forget(settings.state_dir, jail.name)
            return f"{path} changed moments ago"
    import marshal

    from .jailfs import replace_file

    os.makedirs(plans_dir(settings.state_dir), mode=0o700, exist_ok=True)
    replace_file(os.path.join(plans_dir(settings.state_dir), jail.name), marshal.dumps(plan), 0o600)
    return None


def _not_compiled(app: Any, jail: Any, recording: Any) -> str:
    if recording.unreplayable:
        return f"the start cannot be replayed: {recording.unreplayable[0]}"
    if app.settings.registry["url"]:
        return "a shared registry: another host can change the jail's lease"
    site = [info.name for info in app.plugins.infos if info.source != "builtin" and set(info.hooks) & ASKED_EVERY_TIME]
    if site:
        return f"plugin {site[0]} is asked at every start"
    if jail.jid is not None:
        return "the jail was running"
    if "pf" not in app.settings.sections:
        return "another firewall than pf"
    return ""


def _fib(app: Any, jail: Any) -> Optional[int]:
    lease = app.registry.get(jail.name)
    return None if lease is None else lease.fib


def plugin_files(plugins: Any) -> list[str]:
    """The source file of every loaded plugin module (a plugin edited in place)."""
    found = []
    for info in plugins.infos:
        module = sys.modules.get(info.module.split(":")[0])
        path = getattr(module, "__file__", None)
        if isinstance(path, str):
            found.append(path)
    return found


def forget(state_dir: str, name: Optional[str] = None) -> None:
    """Remove NAME's plan (every plan if None): its next start takes the full path."""
    directory = plans_dir(state_dir)
    try:
        names = [name] if name is not None else os.listdir(directory)
    except OSError:
        return
    for each in names:
        try:
            os.unlink(os.path.join(directory, each))
        except OSError:
            pass


# -- reading -----------------------------------------------------------------------------------------------

def load(state_dir: str, name: str, why: Optional[list] = None) -> Optional[dict]:
    """NAME's plan if there is one that this user alone could have written,
    of this format and interpreter, whose inputs are all as they were; else
    None, and the reason appended to WHY."""
    import marshal

    why = [] if why is None else why
    try:
        fd = os.open(os.path.join(plans_dir(state_dir), name), os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK
                     | getattr(os, "O_CLOEXEC", 0))
    except OSError as exc:
        why.append("no plan" if exc.errno == errno.ENOENT else f"plan: {exc.strerror}")
        return None
    with os.fdopen(fd, "rb") as fh:
        st = os.fstat(fh.fileno())
        if not stat.S_ISREG(st.st_mode) or st.st_uid != os.geteuid() or st.st_mode & 0o022:
            why.append("the plan is not a file of this user's alone")
            return None
        try:
            plan = marshal.load(fh)
        except (EOFError, ValueError, TypeError):
            why.append("the plan cannot be read")
            return None
    if not isinstance(plan, dict) or plan.get("format") != FORMAT or plan.get("python") != sys.hexversion \
            or plan.get("jail") != name or plan.get("sys.path") != sys.path:
        why.append("the plan is of another format, interpreter, jail or sys.path")
        return None
    changed = holds(plan)
    if changed:
        why.append(changed)
        return None
    return plan


def holds(plan: dict) -> str:
    """"" if every input of PLAN is as it was when it was compiled, else the first that is not."""
    for path, print_ in plan["inputs"]:
        if fingerprint(path) != print_:
            return f"{path} changed"
    root, files = plan["jail_files"]
    for rel, print_ in files:
        if fingerprint_in(root, rel) != print_:
            return f"{root.rstrip('/')}/{rel} changed"
    return ""

