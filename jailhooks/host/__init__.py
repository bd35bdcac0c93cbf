"""The host layer: the only code that affects FreeBSD.

Each effect is one method that builds an argv list (absolute paths from
``[host.commands]``) and hands it to a runner.  Parsing of command output
lives next to the command, tested against real FreeBSD 15.1 output.
"""
from __future__ import annotations

TYPE_CHECKING = False  # no typing at run time (main.py)
if TYPE_CHECKING:
    from typing import Any

from ..errors import CommandError, DataError
from .runner import CommandTimeout, DryRunRunner, Result, Runner, Stream, SubprocessRunner


class Host:
    def __init__(self, runner: Runner, commands: dict[str, str], timeout: float = 30.0):
        self.runner = runner
        self.commands = commands
        self.timeout = timeout
        self.rejected: list[tuple[str, str]] = []  # jails jls listed that failed validation
        self.recording: Recording | None = None  # set while a start is compiled into a plan (plan.py)
        # remember_jails: one jls listing answers jail() and jails() until this
        # run changes something (a prestart needs the list anyway, for its
        # address check, and the jail itself is not running yet)
        self.remember_jails = False
        self._listed: dict[str, Any] | None = None

    @property
    def mode(self) -> str:
        return self.runner.name

    # -- plumbing -------------------------------------------------------------
    def run(self, tool: str, *args: str, input: str | None = None, check: bool = True,
            mutating: bool = True) -> Result:
        argv = [self.commands[tool], *args]
        if mutating:
            self._listed = None
            if self.recording is not None:
                self.recording.changed(argv)
        try:
            res = self.runner.run(argv, input, self.timeout, mutating)
        except CommandTimeout as exc:
            raise CommandError(argv, -1, note=str(exc)) from None
        if check and res.returncode != 0:
            # route(8) prints the per-route failure ("add net D: gateway G fib N: why") on stdout
            detail = res.stdout if tool == "route" and res.stdout.strip() else res.stderr
            raise CommandError(argv, res.returncode, detail)
        return res

    # -- jails ----------------------------------------------------------------
    JLS_PARAMS = ("jid", "name", "path", "host.hostname", "ip4.addr", "ip6.addr", "vnet")

    def jail(self, name: str, fresh: bool = False) -> dict[str, Any] | None:
        """Facts of a running jail from ``jls --libxo json -j NAME ...``, or
        None; from the remembered listing unless FRESH (see remember_jails)."""
        if self._listed is not None and not fresh:
            found = self._listed.get(name)
            if isinstance(found, str):
                raise CommandError([self.commands["jls"]], 0, note=f"jls reports an invalid jail: {found}")
            return None if found is None else dict(found)
        res = self.run("jls", "--libxo", "json", "-j", name, *self.JLS_PARAMS, check=False, mutating=False)
        if res.returncode != 0:
            if f'jail "{name}" not found' in res.stderr:
                return None
            raise CommandError(list(res.argv), res.returncode, res.stderr)
        jails = parse_jls_json(res)
        if not jails:
            return None
        try:
            return checked_jls_entry(jails[0])
        except ValueError as exc:
            raise CommandError(list(res.argv), 0, note=f"jls reports an invalid jail: {exc}") from None

    def jails(self) -> list[dict[str, Any]]:
        """Every running jail (jls lists only live ones unless -d) whose name and
        addresses are valid.  A jailed root with children.max names its child
        jails, and the kernel takes almost any name without a dot: the others
        are left out and kept in ``self.rejected`` (shown name, reason) for the
        caller to report; they never reach a rule, a path or a command."""
        if self._listed is not None:
            return [dict(j) for j in self._listed.values() if isinstance(j, dict)]
        res = self.run("jls", "--libxo", "json", *self.JLS_PARAMS, mutating=False)
        valid, self.rejected = [], []
        listed: dict[str, Any] = {}
        for j in parse_jls_json(res):
            try:
                checked_jls_entry(j)
            except ValueError as exc:
                self.rejected.append((repr(j["name"])[:80], str(exc)))
                listed[j["name"]] = str(exc)
                continue
            valid.append(j)
            listed[j["name"]] = j
        if self.remember_jails:
            self._listed = {name: dict(j) if isinstance(j, dict) else j for name, j in listed.items()}
        return valid

    def saddrsel(self) -> dict[str, dict[str, bool]]:
        """Each running jail's ip4.saddrsel and ip6.saddrsel (jls parameters;
        true unless ip4.nosaddrsel was set), by name."""
        import json

        res = self.run("jls", "--libxo", "json", "name", "ip4.saddrsel", "ip6.saddrsel", mutating=False)
        try:
            jails = json.loads(res.stdout)["jail-information"]["jail"]
            return {str(j["name"]): {f: j[f"{f}.saddrsel"] in (True, "true") for f in ("ip4", "ip6")}
                    for j in jails}
        except (ValueError, KeyError, TypeError):
            raise CommandError(list(res.argv), res.returncode, res.stderr, note="output is not jls JSON") from None

    def jail_set(self, name: str, *params: str) -> None:
        """``jail -m name=NAME PARAM...``: change a running jail (runs no exec.* hooks)."""
        self.run("jail", "-m", f"name={name}", *params)

    # -- pf -------------------------------------------------------------------
    def pf_load(self, anchor: str, text: str) -> None:
        """Replace the anchor's whole ruleset atomically (one transaction)."""
        with _step(self, "pf_load", anchor, text):
            self.run("pfctl", "-a", anchor, "-f", "-", input=text)

    def pf_flush(self, anchor: str) -> None:
        """Remove the anchor's rules of every class and its tables."""
        self.run("pfctl", "-q", "-a", anchor, "-F", "all")

    def pf_anchors(self, parent: str) -> list[str] | None:
        """Anchors below PARENT (full paths), or None when PARENT does not exist."""
        res = self.run("pfctl", "-a", parent, "-s", "Anchors", check=False, mutating=False)
        if res.returncode != 0:
            if "Anchor does not exist" in res.stderr:
                return None
            raise CommandError(list(res.argv), res.returncode, res.stderr)
        return [line.strip() for line in res.stdout.splitlines() if line.strip()]

    def pf_rules(self, anchor: str, kind: str = "rules") -> list[str]:
        """Printed rules of an anchor ("" = main ruleset); kind rules or nat.
        The exit status is 0 even for a missing anchor, so read the output."""
        args = (["-a", anchor] if anchor else []) + ["-s", kind]
        res = self.run("pfctl", *args, check=False, mutating=False)
        if res.returncode != 0:
            raise CommandError(list(res.argv), res.returncode, res.stderr)
        return [line for line in res.stdout.splitlines() if line and not line.startswith(" ")]

    def pf_counters(self, anchor: str) -> list[tuple[str, int, int]]:
        """(rule, packets, bytes) of each filter rule of ANCHOR since it was
        loaded: ``pfctl -a ANCHOR -v -s rules`` prints each rule, then
        "  [ Evaluations: N  Packets: N  Bytes: N  States: N ]" (in and out
        together) and two more bracketed lines (pfctl_print_rule_counters)."""
        res = self.run("pfctl", "-a", anchor, "-v", "-s", "rules", check=False, mutating=False)
        if res.returncode != 0:
            raise CommandError(list(res.argv), res.returncode, res.stderr)
        found: list[tuple[str, int, int]] = []
        rule = None
        for line in res.stdout.splitlines():
            if line and not line.startswith(" "):
                rule = line
            elif rule is not None and line.startswith("  [ Evaluations:"):
                words = line.replace("]", " ").split()
                numbers = {words[i].rstrip(":"): words[i + 1] for i in range(1, len(words) - 1, 2)}
                found.append((rule, int(numbers.get("Packets", 0)), int(numbers.get("Bytes", 0))))
                rule = None
        return found

    def pf_tables(self, anchor: str) -> list[str]:
        """Names of the anchor's tables; [] when the anchor does not exist (pfctl
        then exits 1 with pfr_strerror(ENOENT), pfctl_table.c and pfctl_radix.c)."""
        res = self.run("pfctl", "-a", anchor, "-s", "Tables", check=False, mutating=False)
        if res.returncode != 0:
            if "Anchor or Ruleset does not exist" in res.stderr:
                return []
            raise CommandError(list(res.argv), res.returncode, res.stderr)
        return [line.strip() for line in res.stdout.splitlines() if line.strip()]

    def pf_show_all(self, kind: str = "rules") -> str:
        """The whole live tree of one rule class ("rules" or "nat"): the main
        ruleset and every anchor it calls, recursively (``-a '*'`` sets
        PF_OPT_RECURSE in pfctl.c; see pf/listing.py for the format)."""
        return _read(self, f"pf_show_all {kind}", self.run("pfctl", "-a", "*", "-s", kind, mutating=False).stdout)

    def pf_skipped(self) -> list[str]:
        """Interfaces pf does not filter (``set skip``): ``pfctl -v -s
        Interfaces`` marks them " (skip)" (print_iface, pfctl_table.c)."""
        res = self.run("pfctl", "-v", "-s", "Interfaces", mutating=False)
        return _read(self, "pf_skipped", [line[:-len(" (skip)")] for line in res.stdout.splitlines()
                                          if line.endswith(" (skip)")])

    def pf_table(self, anchor: str, table: str) -> list[str] | None:
        """The entries of a table (``-t T -T show``, one per line after three
        columns of flags: print_addrx), or None when there is no such table."""
        args = (["-a", anchor] if anchor else []) + ["-t", table, "-T", "show"]
        if self.recording is not None:  # a live table can change at any time: a start that reads one is not replayed
            self.recording.not_replayable(f"the proof read table <{table}>")
        res = self.run("pfctl", *args, check=False, mutating=False)
        if res.returncode != 0:
            if "does not exist" in res.stderr:
                return None
            raise CommandError(list(res.argv), res.returncode, res.stderr)
        return [line[2:].strip() if line[2:3] == "!" else line.strip() for line in res.stdout.splitlines()
                if line.strip()]

    def pf_running(self) -> bool:
        res = self.run("pfctl", "-s", "Running", check=False, mutating=False)
        if res.stdout.strip() in ("Enabled", "Disabled"):
            return _read(self, "pf_running", res.stdout.strip() == "Enabled")
        raise CommandError(list(res.argv), res.returncode, res.stderr)

    def pf_kill_label(self, label: str) -> None:
        self.run("pfctl", "-q", "-k", "label", "-k", label)

    def pf_kill_address(self, address: str) -> None:
        """Kill states from and to ADDRESS (two calls: -k is by source first)."""
        wildcard = "::/0" if ":" in address else "0.0.0.0/0"
        self.run("pfctl", "-q", "-k", address)
        self.run("pfctl", "-q", "-k", wildcard, "-k", address)

    def pflog_follow(self, interface: str) -> "Followed":
        """``tcpdump -U -w - -i INTERFACE``: what pf logs to pflog(4) as it
        passes, a pcap stream for pf/pflog.py's reader (-w -: raw records on
        stdout; -U: each record flushed as it comes, and the file header at
        once, since tcpdump.c calls pcap_dump_flush right after
        pcap_dump_open).  pflogd(8) reads the same interface; a second
        reader takes nothing from it.  Close it when done."""
        return Followed(self.runner.stream([self.commands["tcpdump"], "-U", "-w", "-", "-i", interface]))

    def log_follow(self, path: str) -> "Followed":
        """``tail -F -n 0 PATH``: the lines appended to a log from now on,
        also after newsyslog rotates it (tail(1) -F).  Close it when done."""
        return Followed(self.runner.stream([self.commands["tail"], "-F", "-n", "0", path]))

    # -- ipfw -------------------------------------------------------------------
    def ipfw_script(self, lines: list[str]) -> None:
        """LINES (ipfw commands, without "ipfw") in one ``ipfw -q /dev/stdin``:
        main.c reads a last argument that is an absolute path as a file of
        commands, one per line, in order; the first that fails stops it and
        the lines before it stay (ipfw_readfile: not a transaction)."""
        for line in lines:
            if "\n" in line or len(line) >= 4095:  # fgets(buf, 4096) would cut it in two commands
                raise ValueError(f"ipfw: a command line of {len(line)} characters cannot be sent")
        self.run("ipfw", "-q", "/dev/stdin", input="".join(f"{line}\n" for line in lines))

    def ipfw_list(self) -> list[str]:
        """``ipfw list``: every rule, "NNNNN body" (5 digits), the default last."""
        return self.run("ipfw", "list", mutating=False).stdout.splitlines()

    def ipfw_counters(self) -> list[tuple[int, int, int, str]]:
        """``ipfw show``: (number, packets, bytes, body) of every rule, as
        ipfw2.c prints them with counters ("NNNNN PKTS BYTES body")."""
        found = []
        for line in self.run("ipfw", "show", mutating=False).stdout.splitlines():
            words = line.split(None, 3)
            if len(words) == 4 and all(w.isdigit() for w in words[:3]):
                found.append((int(words[0]), int(words[1]), int(words[2]), words[3]))
        return found

    def ipfw_table(self, name: str) -> list[str] | None:
        """The keys of table NAME (``ipfw table NAME list``: a header, then
        "key value" lines), or None when there is no such table."""
        res = self.run("ipfw", "table", name, "list", check=False, mutating=False)
        if res.returncode != 0:
            if "No such process" in res.stderr:  # ESRCH
                return None
            raise CommandError(list(res.argv), res.returncode, res.stderr)
        return [line.split()[0] for line in res.stdout.splitlines() if line.strip() and not line.startswith("---")]

    def ipfw_nat(self) -> dict[int, str]:
        """The in-kernel nat's instances: ``ipfw nat show config`` prints one
        line each, "ipfw nat N config ip ADDR [redirect_port ...]" (nat.c
        nat_show_cfg), by number; {N: that line}."""
        found = {}
        for line in self.run("ipfw", "nat", "show", "config", mutating=False).stdout.splitlines():
            words = line.split()
            if words[:2] == ["ipfw", "nat"] and len(words) > 3 and words[2].isdigit() and words[3] == "config":
                found[int(words[2])] = line
        return found

    def ipfw_enabled(self) -> bool:
        """Does ipfw filter (ipfw.ko loaded, net.inet.ip.fw.enable=1)?"""
        return self.sysctl("net.inet.ip.fw.enable") == "1"

    # -- routes (route(8), one FIB at a time) --------------------------------------
    def route(self, verb: str, family: str, args: list[str], fib: int) -> None:
        """``route -q -n -4|-6 add|change|delete ARGS -fib FIB``."""
        if verb not in ("add", "change", "delete") or family not in ("-4", "-6"):
            raise ValueError(f"route {verb} {family}: not a route change jailhooks makes")
        self.run("route", "-q", "-n", family, verb, *args, "-fib", str(fib))

    def route_set(self, family: str, args: list[str], fib: int, delete: list[str]) -> bool:
        """Make the route ARGS hold in FIB: add it (True), or change the route
        already there to it (False; route(8) add says "File exists", or "already
        in table" on older releases).  DELETE: the arguments that remove it."""
        with _step(self, "route_set", family, list(args), fib, list(delete)):
            try:
                self.route("add", family, args, fib)
                return True
            except CommandError as exc:
                if "already in table" not in str(exc) and "File exists" not in str(exc):
                    raise
            self.route("change", family, args, fib)
            return False

    def route_delete_if_there(self, family: str, args: list[str], fib: int) -> bool:
        """Delete a route; False when it was not in the table (route(8)
        prints "not in table"), CommandError on any other failure."""
        res = self.run("route", "-q", "-n", family, "delete", *args, "-fib", str(fib), check=False)
        if res.returncode == 0:
            return True
        if "not in table" in res.stdout + res.stderr:
            return False
        raise CommandError(list(res.argv), res.returncode, (res.stderr or res.stdout).strip())

    def route_flush(self, fib: int) -> None:
        """Every gateway route of FIB (route(8) flush: the default route and the
        routes through a gateway; interface routes stay)."""
        self.run("route", "-q", "-n", "flush", "-fib", str(fib))

    def route_exists(self, family: str, destination: str, fib: int) -> bool:
        """``route -n -4|-6 get -fib FIB DESTINATION`` finds a route."""
        return self.run("route", "-n", family, "get", "-fib", str(fib), destination, check=False,
                        mutating=False).returncode == 0

    # -- sysctl -----------------------------------------------------------------
    def sysctl(self, name: str) -> str | None:
        """A sysctl's value, or None if the oid does not exist."""
        res = self.run("sysctl", "-n", name, check=False, mutating=False)
        if res.returncode != 0:
            if "unknown oid" in res.stderr:
                return None
            raise CommandError(list(res.argv), res.returncode, res.stderr)
        return res.stdout.strip()


class Recording:
    """What one start did to the host, for plan.py: the steps it took (host
    methods that a replay can take again, with their arguments), the answers
    the proof read, and whether anything else changed the host."""

    def __init__(self) -> None:
        self.steps: list[tuple] = []
        self.reads: dict[str, object] = {}
        self.unreplayable: list[str] = []
        self._in_step = 0

    def changed(self, argv: list[str]) -> None:
        if not self._in_step:
            self.not_replayable(f"it ran {' '.join(argv[:4])}")

    def not_replayable(self, why: str) -> None:
        self.unreplayable.append(why)


class _step:
    """Record one step of a recorded start (a no-op otherwise)."""

    def __init__(self, host: Host, *step: object) -> None:
        self.rec = host.recording
        if self.rec is not None:
            self.rec.steps.append(step)

    def __enter__(self) -> None:
        if self.rec is not None:
            self.rec._in_step += 1

    def __exit__(self, *exc: object) -> None:
        if self.rec is not None:
            self.rec._in_step -= 1


def _read(host: Host, what: str, answer: Any) -> Any:
    if host.recording is not None:
        host.recording.reads[what] = answer
    return answer


class Followed:
    """A Stream read to its end: a command that ended by itself with a
    failure (no such interface, no permission) raises CommandError there."""

    def __init__(self, stream: Stream):
        self.stream, self.result = stream, None

    def read(self, size: int) -> bytes:
        data = self.stream.read(size) if self.result is None else b""
        if len(data) < size:
            self._ended()
        return data

    def readline(self) -> bytes:
        data = self.stream.readline() if self.result is None else b""
        if not data.endswith(b"\n"):
            self._ended()
        return data

    def _ended(self) -> None:
        if self.result is None:
            self.result = self.stream.close()
            if self.result.returncode != 0:
                raise CommandError(list(self.result.argv), self.result.returncode, self.result.stderr)

    def close(self) -> None:
        if self.result is None:
            self.result = self.stream.close()  # stopped by us: its exit status says nothing

    def __enter__(self) -> "Followed":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def checked_jls_entry(j: dict[str, Any]) -> dict[str, Any]:
    """J with its name and addresses validated as any other input (ValueError)."""
    from .. import validate

    validate.jail_name(j["name"])
    j["ip4"] = [validate.jail_address(a, 4) for a in j["ip4"]]
    j["ip6"] = [validate.jail_address(a, 6) for a in j["ip6"]]
    return j


def parse_jls_json(res: Result) -> list[dict[str, Any]]:
    """Parse ``jls --libxo json`` with explicit parameters (values are strings,
    ip4.addr/ip6.addr lists), as FreeBSD 15.1 prints it."""
    import json  # only when there is a jail to read

    try:
        doc = json.loads(res.stdout)
        jails = doc["jail-information"]["jail"]
    except (ValueError, KeyError, TypeError):
        raise CommandError(list(res.argv), res.returncode, res.stderr, note="output is not jls JSON") from None
    if not isinstance(jails, list):
        raise CommandError(list(res.argv), res.returncode, note="output is not jls JSON")
    out = []
    for j in jails:
        try:
            out.append({
                "jid": int(j["jid"]),
                "name": str(j["name"]),
                "path": str(j.get("path", "")) or None,
                "hostname": str(j.get("host.hostname", "")) or None,
                "ip4": [str(a) for a in j.get("ip4.addr", []) or []],
                "ip6": [str(a) for a in j.get("ip6.addr", []) or []],
                "vnet": j.get("vnet") == "new",  # jailsys: new (own stack) or inherit
            })
        except (KeyError, TypeError, ValueError):
            raise CommandError(list(res.argv), res.returncode, note="unexpected jls JSON") from None
    return out


__all__ = ["Host", "Result", "Runner", "SubprocessRunner", "DryRunRunner", "parse_jls_json", "DataError"]
