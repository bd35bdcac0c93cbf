"""A model of the part of pfctl's pf.conf grammar that jailhooks relies on.

Pure (no I/O).  The pf plugin uses it to count the rules an anchor text
expands into (what "loaded" must find); the simulated host uses it to parse
what ``pfctl -f`` is given: it refuses
what FreeBSD 15.1's parse.y refuses (for this subset, with the same
``FILE:LINE: message`` errors), and prints rules the way ``print_rule()``
does, so ``pfctl -s rules`` / ``-s nat`` / ``-nv`` output matches a real host
byte for byte (checked against the recorded 15.1 fixtures in tests/).

Anything outside the subset is a syntax error: a command jailhooks should not
send fails here rather than on a user's host.
"""
from __future__ import annotations

import re

from .. import validate

# Character sets of names and unquoted strings.  Plain string tests, not
# patterns: each pattern costs a compile in every simulated pfctl process.
_NAME_CHARS = frozenset("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789_.:/-")
_UNQUOTED_CHARS = _NAME_CHARS | {"*"}

# FreeBSD /etc/services names for the ports print_rule() resolves (tcp and udp
# agree for these).  Other ports print as numbers.
SERVICES = {
    20: "ftp-data", 21: "ftp", 22: "ssh", 23: "telnet", 25: "smtp", 53: "domain",
    80: "http", 110: "pop3", 123: "ntp", 143: "imap", 443: "https", 587: "submission",
    993: "imaps", 995: "pop3s", 3306: "mysql", 5432: "postgresql", 8080: "http-alt",
}
ICMP6_TYPES = {"echoreq", "echorep", "neighbrsol", "neighbradv", "routersol", "routeradv", "unreach", "toobig", "timex"}
ICMP_TYPES = {"echoreq", "echorep", "unreach", "timex", "paramprob"}

_TOKEN = re.compile(r'"[^"\n]*"|->|><|<>|<=|>=|!=|[{}(),=!<>]|[^\s{}(),=!<>"#]+')


class PfSyntaxError(Exception):
    def __init__(self, line: int, message: str = "syntax error"):
        self.line = line
        super().__init__(message)


class Address:
    __slots__ = ("text", "af")

    def __init__(self, text: str, af: int = 0) -> None:
        self.text = text  # as printed: address, network, <table>, any
        self.af = af  # 4, 6 or 0 (any, table)


class Rule:
    """One parsed rule (before expansion)."""

    def __init__(self, kind: str, line: int):
        self.kind, self.line = kind, line  # filter, nat, anchor, nat-anchor, rdr-anchor
        self.action = self.direction = self.interface = self.user = self.label = self.tag = self.tagged = ""
        self.anchor = ""
        self.log = self.quick = self.icmp6 = False
        self.log_user = False  # log (user): the socket's uid in the pflog header (parse.y logopt USER)
        self.ridentifier = 0  # ridentifier N: carried in the pflog header
        self.af = 0
        self.protos: list[str] = []
        self.src: list[Address] = []
        self.src_ports: list[str] = []
        self.dst: list[Address] = []
        self.dst_ports: list[str] = []
        self.icmp_types: list[str] = []
        self.flags: str | None = None
        self.state: str | None = None
        self.target: Address | None = None
        self.target_port = ""  # rdr: -> ADDR port N


class Ruleset:
    def __init__(self) -> None:
        self.tables: dict[str, list[str]] = {}
        self.skip: list[str] = []  # set skip on ...
        self.rules: list[Rule] = []
        self.printed: list[str] = []  # macro/table lines, in parse order (-nv)

    def lines(self, kind: str) -> list[str]:
        """Printed rules of one class: 'filter' (-s rules) or 'nat' (-s nat)."""
        out: list[str] = []
        for r in self.rules:
            if (kind == "nat") == (r.kind in ("nat", "rdr", "nat-anchor", "rdr-anchor")):
                out.extend(expand(r))
        return out

    def nv_output(self) -> str:
        body = self.printed + self.lines("nat") + self.lines("filter")
        return "".join(line + "\n" for line in body)


class _Parser:
    def __init__(self, tokens: list[str], line: int, macros: dict[str, str]):
        self.t, self.i, self.line, self.macros = tokens, 0, line, macros

    def peek(self) -> str | None:
        return self.t[self.i] if self.i < len(self.t) else None

    def take(self, *expected: str) -> str:
        tok = self.peek()
        if tok is None or (expected and tok not in expected):
            raise PfSyntaxError(self.line)
        self.i += 1
        return tok

    def accept(self, word: str) -> bool:
        if self.peek() == word:
            self.i += 1
            return True
        return False

    def done(self) -> None:
        if self.peek() is not None:
            raise PfSyntaxError(self.line)

    def name(self) -> str:
        tok = self.take()
        if not _NAME_CHARS.issuperset(tok):  # take() never returns ""
            raise PfSyntaxError(self.line)
        return tok

    def quoted(self) -> str:
        tok = self.take()
        if tok.startswith('"'):
            return tok[1:-1]
        if not _UNQUOTED_CHARS.issuperset(tok):
            raise PfSyntaxError(self.line)
        return tok

    def list_or_one(self, item) -> list:
        if self.accept("{"):
            items = []
            while not self.accept("}"):
                if self.accept(","):
                    continue
                items.extend(item())
            if not items:
                raise PfSyntaxError(self.line)
            return items
        return item()

    def host(self) -> list[Address]:
        tok = self.take()
        if tok == "any":
            return [Address("any")]
        if tok == "<":
            name = self.name()
            self.take(">")
            return [Address(f"<{name}>")]
        if tok == "(":  # an interface's addresses, as the kernel resolves them: (em0), (em0:0)
            name = self.name()
            self.take(")")
            iface, _, modifier = name.partition(":")
            if not validate.re_interface(iface) or modifier not in ("", "0", "network", "broadcast", "peer"):
                raise PfSyntaxError(self.line, "could not parse host specification")
            return [Address(f"({name})")]
        if tok == "{":  # nested list (macro that expands to a list)
            self.i -= 1
            return self.list_or_one(self.host)
        if validate.dotted_quad(tok):
            return [Address(tok, 4)]
        import ipaddress  # only for networks and IPv6

        try:
            if "/" in tok:
                net = ipaddress.ip_network(tok, strict=False)
                return [Address(f"{net.network_address}/{net.prefixlen}", net.version)]
            addr = ipaddress.ip_address(tok)
            return [Address(str(addr), addr.version)]
        except ValueError:
            raise PfSyntaxError(self.line, "could not parse host specification") from None

    def port(self) -> list[str]:
        if self.accept("="):
            tok = self.take()
        else:
            tok = self.take()
        parts = tok.split(":")
        if len(parts) > 2 or not all(p.isascii() and p.isdigit() for p in parts):
            raise PfSyntaxError(self.line)
        low = int(parts[0])
        high = int(parts[1]) if len(parts) == 2 else None
        if not 0 <= low <= 65535 or (high is not None and not low <= high <= 65535):
            raise PfSyntaxError(self.line, "illegal port value")
        return [f"{low}:{high}"] if high is not None else [str(low)]

    def uid(self) -> str:
        tok = self.take()
        if tok == "unknown":
            raise PfSyntaxError(self.line, "user unknown requires operator = or !=")
        if not tok.isdigit():
            # parse.y looks names up with getpwnam(); "20000:20999" is a name
            raise PfSyntaxError(self.line, f"unknown user {tok}")
        if int(tok) >= 4294967295:
            raise PfSyntaxError(self.line, "illegal uid value")
        return tok


def tokenize(text: str, line: int, macros: dict[str, str]) -> list[str]:
    out: list[str] = []
    for tok in _TOKEN.findall(text):
        if tok.startswith("$"):
            # parse.y's lexer reads a macro name as letters, digits and '_':
            # "$ext_if:0" is the macro ext_if followed by ":0"
            name = tok[1:len(tok) - len(tok[1:].lstrip("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789_"))]
            rest = tok[1 + len(name):]
            if name not in macros:
                raise PfSyntaxError(line, f"macro '{name}' not defined")
            if rest:
                out.extend(tokenize(macros[name] + rest, line, macros))
            else:
                out.extend(tokenize(macros[name], line, macros))
        else:
            out.append(tok)
    return out


def _strip_comment(line: str) -> str:
    in_quote = False
    for i, ch in enumerate(line):
        if ch == '"':
            in_quote = not in_quote
        elif ch == "#" and not in_quote:
            return line[:i]
    return line


def _macro(body: str) -> tuple[str, str] | None:
    """NAME = "VALUE" (a macro definition) as (NAME, VALUE), else None."""
    name, eq, value = body.partition("=")
    name, value = name.strip(), value.strip()
    if (eq and name.isascii() and name.isidentifier() and name[0].isalpha() and len(value) >= 2
            and value[0] == value[-1] == '"' and '"' not in value[1:-1]):
        return name, value[1:-1]
    return None


def parse(text: str, in_anchor: bool) -> Ruleset:
    """Parse a whole file; raises PfSyntaxError for the first bad line."""
    rs = Ruleset()
    macros: dict[str, str] = {}
    stage = 0
    for lineno, raw in enumerate(text.split("\n"), start=1):
        body = _strip_comment(raw).strip()
        if not body:
            continue
        macro = _macro(body)
        if macro:
            macros[macro[0]] = macro[1]
            rs.printed.append(f'{macro[0]} = "{macro[1]}"')
            continue
        p = _Parser(tokenize(body, lineno, macros), lineno, macros)
        head = p.peek()
        if head == "set":  # only "set skip on IF" (in an anchor, pfctl parses options but loads none)
            p.take()
            p.take("skip")
            p.take("on")
            rs.skip.extend(p.list_or_one(lambda: [p.name()]))
            p.done()
            continue
        if head == "table":
            _table(p, rs)
            continue
        if head in ("nat", "rdr", "nat-anchor", "rdr-anchor"):
            kind_stage = 3
        elif head in ("pass", "block", "anchor"):
            kind_stage = 4
        else:
            raise PfSyntaxError(lineno)
        if kind_stage < stage:
            raise PfSyntaxError(lineno, "Rules must be in order: options, normalization, queueing, translation, filtering")
        stage = kind_stage
        if head in ("anchor", "nat-anchor", "rdr-anchor"):
            if in_anchor:
                raise PfSyntaxError(lineno)  # nested anchors: outside the subset
            rs.rules.append(_anchor_rule(p))
        elif head in ("nat", "rdr"):
            rs.rules.append(_nat(p))
        else:
            rs.rules.append(_filter(p))
    for r in rs.rules:
        if not expand(r):
            raise PfSyntaxError(r.line, "rule expands to no valid combination")
    return rs


def _table(p: _Parser, rs: Ruleset) -> None:
    p.take("table")
    p.take("<")
    name = p.name()
    p.take(">")
    flags = []
    while p.peek() in ("const", "persist", "counters"):
        flags.append(p.take())
    addrs: list[str] = []
    if p.peek() == "{":
        addrs = [h.text for h in p.list_or_one(p.host)]
        if any(a == "any" or a.startswith("<") for a in addrs):
            raise PfSyntaxError(p.line)
    p.done()
    if name in rs.tables:
        raise PfSyntaxError(p.line, f"table <{name}> redefined")
    rs.tables[name] = addrs
    flag_text = "".join(f" {f}" for f in ("persist", "const", "counters") if f in flags)
    rs.printed.append(f"table <{name}>{flag_text} {{ {' '.join(addrs)} }}" if addrs else f"table <{name}>{flag_text}")


def _af_proto(p: _Parser, r: Rule) -> None:
    if p.peek() in ("inet", "inet6"):
        r.af = 4 if p.take() == "inet" else 6
    if p.accept("proto"):
        r.protos = p.list_or_one(lambda: [p.take("tcp", "udp", "icmp", "ipv6-icmp")])


def _fromto(p: _Parser, r: Rule) -> None:
    if p.accept("all"):
        r.src, r.dst = [Address("any")], [Address("any")]
        return
    if p.accept("from"):
        r.src = p.list_or_one(p.host)
        if p.accept("port"):
            r.src_ports = p.list_or_one(p.port)
    else:
        r.src = [Address("any")]
    p.take("to")
    r.dst = p.list_or_one(p.host)
    if p.accept("port"):
        r.dst_ports = p.list_or_one(p.port)
    if (r.src_ports or r.dst_ports) and (not r.protos or set(r.protos) - {"tcp", "udp"}):
        raise PfSyntaxError(p.line, "port only applies to tcp/udp")


def _anchor_rule(p: _Parser) -> Rule:
    r = Rule(kind=p.take(), line=p.line)
    r.anchor = p.quoted()
    if r.kind == "anchor" and p.peek() in ("in", "out"):
        r.direction = p.take()
    if p.accept("on"):
        r.interface = p.name()
    r.src, r.dst = [Address("any")], [Address("any")]
    if p.peek() in ("all", "from", "to", "inet", "inet6", "proto"):
        _af_proto(p, r)
        _fromto(p, r)
    p.done()
    return r


def _nat(p: _Parser) -> Rule:
    """nat, and rdr (whose target may carry one port: ``-> ADDR port N``)."""
    r = Rule(kind=p.take("nat", "rdr"), line=p.line)
    p.take("on")
    r.interface = p.name()
    _af_proto(p, r)
    _fromto(p, r)
    if p.accept("tag"):
        r.tag = p.name()
    p.take("->")
    target = p.host()
    if len(target) != 1 or target[0].af == 0:
        raise PfSyntaxError(p.line)
    r.target = target[0]
    if r.af and r.af != r.target.af:
        raise PfSyntaxError(p.line, "no translation address with matching address family found.")
    if r.kind == "rdr" and p.accept("port"):
        r.target_port = p.port()[0]
    p.done()  # "... -> ADDR tag X" is a syntax error in 15.1 (tag comes before ->)
    return r


def _filter(p: _Parser) -> Rule:
    r = Rule(kind="filter", line=p.line)
    r.action = p.take("pass", "block")
    if r.action == "block":
        r.action = "block " + (p.take() if p.peek() in ("drop", "return") else "drop")
    r.direction = p.take("in", "out")
    r.log = p.accept("log")
    if r.log and p.accept("("):
        r.log_user = p.take("user") == "user"  # the subset: log (user)
        p.take(")")
    r.quick = p.accept("quick")
    if p.accept("on"):
        r.interface = p.name()
    _af_proto(p, r)
    if p.peek() in ("all", "from", "to"):
        _fromto(p, r)
    else:
        r.src, r.dst = [Address("any")], [Address("any")]
    while p.peek() is not None:
        word = p.take()
        if word == "user":
            if p.peek() == "{":
                raise PfSyntaxError(p.line)  # lists: outside the subset
            if p.accept("="):
                r.user = f"= {p.uid()}"
            else:
                first = p.uid()
                if p.peek() in ("><", "<>"):
                    op = p.take()
                    r.user = f"{first} {op} {p.uid()}"
                else:
                    r.user = f"= {first}"
        elif word == "flags":
            r.flags = p.name()
        elif word == "keep":
            p.take("state")
            r.state = "keep state"
        elif word == "no":
            p.take("state")
            r.state = "no state"
        elif word == "label":
            tok = p.take()
            if not tok.startswith('"') or len(tok) - 2 > 63:
                raise PfSyntaxError(p.line)
            r.label = tok[1:-1]
        elif word == "ridentifier":
            value = p.take()
            if not value.isdigit() or int(value) > 0xFFFFFFFF:
                raise PfSyntaxError(p.line)
            r.ridentifier = int(value)
        elif word == "tag":
            r.tag = p.name()
        elif word == "tagged":
            r.tagged = p.name()
        elif word in ("icmp-type", "icmp6-type"):
            valid = ICMP_TYPES if word == "icmp-type" else ICMP6_TYPES
            r.icmp6 = word == "icmp6-type"
            r.icmp_types = p.list_or_one(lambda: [p.take(*valid)])
        else:
            raise PfSyntaxError(p.line)
    return r


def _port_text(port: str) -> str:
    if ":" in port:
        return f" port {port}"
    n = int(port)
    return f" port = {SERVICES.get(n, n)}"


def expand(r: Rule) -> list[str]:
    """print_rule() output for every combination the rule expands into."""
    if r.kind in ("anchor", "nat-anchor", "rdr-anchor"):
        head = f'{r.kind} "{r.anchor}"'
        if r.direction:
            head += f" {r.direction}"
        if r.interface:
            head += f" on {r.interface}"
        return [f"{head} all"]
    lines: list[str] = []
    for proto in r.protos or [""]:
        for src in r.src:
            for sport in r.src_ports or [""]:
                for dst in r.dst:
                    for dport in r.dst_ports or [""]:
                        af = r.af
                        for h in (src, dst):
                            if h.af:
                                if af and af != h.af:
                                    break
                                af = h.af
                        else:
                            if r.kind in ("nat", "rdr") and r.target and af and r.target.af != af:
                                continue
                            for icmp in r.icmp_types or [""]:
                                lines.append(_print(r, af, proto, src, sport, dst, dport, icmp))
    return lines


def _print(r: Rule, af: int, proto: str, src: Address, sport: str, dst: Address, dport: str, icmp: str) -> str:
    out = [r.action if r.kind == "filter" else r.kind]
    if r.kind == "filter":
        out.append(f" {r.direction}")
        if r.log:
            out.append(" log (user)" if r.log_user else " log")
        if r.quick:
            out.append(" quick")
    if r.interface:
        out.append(f" on {r.interface}")
    if af:
        out.append(" inet" if af == 4 else " inet6")
    if proto:
        out.append(f" proto {proto}")
    if src.text == "any" and dst.text == "any" and not sport and not dport:
        out.append(" all")
    else:
        out.append(f" from {src.text}{_port_text(sport) if sport else ''}")
        out.append(f" to {dst.text}{_port_text(dport) if dport else ''}")
    if r.kind in ("nat", "rdr"):
        if r.tag:
            out.append(f" tag {r.tag}")
        out.append(f" -> {r.target.text}")  # type: ignore[union-attr]
        if r.target_port:  # print_pool(): " port %u", numeric
            out.append(f" port {r.target_port}")
        return "".join(out)
    if r.user:
        out.append(f" user {r.user}")
    passing = r.action == "pass"
    if r.flags:
        out.append(f" flags {r.flags}")
    elif passing and r.state != "no state" and proto in ("", "tcp"):
        out.append(" flags S/SA")  # the default for stateful tcp rules
    if icmp:
        out.append(f" {'icmp6-type' if r.icmp6 else 'icmp-type'} {icmp}")
    if r.state == "no state":
        out.append(" no state")
    elif passing or r.state:
        out.append(" keep state")
    if r.label:
        out.append(f' label "{r.label}"')
    if r.ridentifier:  # print_rule(): right after the labels
        out.append(f" ridentifier {r.ridentifier}")
    if r.tag:
        out.append(f" tag {r.tag}")
    if r.tagged:
        out.append(f" tagged {r.tagged}")
    return "".join(out)
