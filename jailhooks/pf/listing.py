"""What pf holds, read the way pfctl prints it.

``pfctl -a '*' -s rules`` and ``pfctl -a '*' -s nat`` print the whole live
tree in one go: the main ruleset, and below every anchor call its rules
(``PF_OPT_RECURSE``, FreeBSD 15.1 sbin/pfctl/pfctl.c, pfctl_show_rules and
pfctl_show_nat): the call line ends in `` {``, what is inside is indented by
two spaces per level (``INDENT``), and ``}`` closes it.  A wildcard call
``anchor "P/*"`` holds one block per child of P, in the kernel's order (its
RB tree: strcmp of the names), each printed as ``anchor "NAME" all {`` (for
the translation hooks ``nat-anchor "NAME" all {``, whatever the hook's kind:
the child block holds all of that child's nat, rdr and binat rules).

This module turns that text into a tree of `PrintedRule`s, and back
(`listing`, which the simulated pfctl prints).  It never guesses: a word it
does not model is kept in the rule's ``unmodelled`` list, and whoever
evaluates the rule must say "not proven" when such a rule could decide.
"""
from __future__ import annotations

import re

from .syntax import SERVICES

_TOKEN = re.compile(r'"[^"]*"|\([^()]*\)(?:/\d+)?|[^\s"()]+')
_PORT_BY_NAME = {name: port for port, name in SERVICES.items()}
_OPS = ("=", "!=", "<", "<=", ">", ">=")
_RANGE_OPS = ("><", "<>")

# Words after from/to that neither restrict which packets a rule matches nor
# change its verdict (labels, queues, routing table, scrub and set actions),
# with how many arguments follow.  Conditions (tos, prio, max-pkt-rate, once
# ...: pf.conf(5)) are not among them: a rule with one is "unmodelled".
_HARMLESS = {"label": 1, "ridentifier": 1, "queue": 1, "rtable": 1, "dnpipe": 1, "dnqueue": 1,
             "max-mss": 1, "min-ttl": 1, "set-tos": 1, "allow-opts": 0, "random-id": 0, "no-df": 0,
             "reassemble": 1, "scrub": 1, "set": 2}


class Host:
    """One side of from/to: ``any``, an address or network, a ``<table>``, an
    interface's addresses (``dynamic``: ``(em0)``, ``(em0:0)``), or something
    only the kernel can resolve (self, no-route, urpf-failed, a range), kept
    as ``other``."""

    __slots__ = ("kind", "value", "neg", "port")

    def __init__(self, kind: str, value: str = "", neg: bool = False) -> None:
        self.kind, self.value, self.neg = kind, value, neg
        self.port: tuple[str, int, int] | None = None  # (op, a, b)


ANY = Host("any")


class PrintedRule:
    """One rule as pfctl printed it.  ``kind`` is filter, nat, rdr, binat,
    scrub, match, or an anchor call (anchor, nat-anchor, rdr-anchor,
    binat-anchor; ``children`` then holds (path, rules) of what it calls)."""

    def __init__(self, text: str, path: str) -> None:
        self.text, self.path = text, path  # path: the anchor the rule lives in ("" = main)
        self.kind = self.action = self.direction = self.interface = self.tag = self.tagged = ""
        self.interface_not = self.quick = self.log = self.keep_state = self.negated = False
        self.af = 0
        self.proto = ""
        self.src, self.dst = ANY, ANY
        self.user: tuple[str, int, int] | None = None
        self.icmp_type = ""
        self.flags = ""
        self.target = ""  # nat/rdr: the translation address
        self.target_port = 0
        self.call = ""  # anchor calls: the path as printed
        self.children: list[tuple[str, list[PrintedRule]]] = []
        self.unmodelled: list[str] = []

    def __repr__(self) -> str:
        where = self.path or "main"
        return f"<{where}: {self.text}>"


def parse_listing(text: str) -> list[PrintedRule]:
    """The main ruleset's rules from ``pfctl -a '*' -s rules`` (or ``-s nat``)."""
    lines = [line for line in text.split("\n") if line.strip() and not line.lstrip().startswith("[")]
    rules, end = _block(lines, 0, 0, "")
    if end != len(lines):
        raise ValueError(f"pfctl listing: unexpected line {lines[end].strip()!r}")
    return rules


def _indent(line: str) -> int:
    return (len(line) - len(line.lstrip(" "))) // 2


def _block(lines: list[str], i: int, depth: int, path: str) -> tuple[list[PrintedRule], int]:
    rules: list[PrintedRule] = []
    while i < len(lines):
        line = lines[i]
        body = line.strip()
        if body == "}":
            return rules, i
        if _indent(line) != depth:
            raise ValueError(f"pfctl listing: line {body!r} is not where its indentation says")
        opens = body.endswith(" {")
        rule = parse_rule(body[:-2] if opens else body, path)
        i += 1
        if opens:
            if not rule.kind.endswith("anchor"):
                raise ValueError(f"pfctl listing: a block after a rule that calls no anchor: {body!r}")
            # an anonymous anchor (anchor { ... } in pf.conf) prints without its name
            target = _resolve(path, rule.call) if rule.call else f"{path}/_anonymous" if path else "_anonymous"
            if rule.call and rule.call.endswith("/*"):  # one block per child
                while i < len(lines) and lines[i].strip() != "}":
                    child = parse_rule(lines[i].strip()[:-2], path)
                    if not lines[i].strip().endswith(" {") or not child.call or _indent(lines[i]) != depth + 1:
                        raise ValueError(f"pfctl listing: expected a child anchor, got {lines[i].strip()!r}")
                    child_path = f"{target}/{child.call}" if target else child.call
                    inner, i = _block(lines, i + 1, depth + 2, child_path)
                    rule.children.append((child_path, inner))
                    i += 1  # its "}"
            else:
                inner, i = _block(lines, i, depth + 1, target)
                rule.children.append((target, inner))
            if i >= len(lines):
                raise ValueError("pfctl listing: a block is not closed")
            i += 1  # the call's "}"
        rules.append(rule)
    return rules, i


def _resolve(path: str, call: str) -> str:
    call = call[:-2] if call.endswith("/*") else call
    if call.startswith("/"):
        return call.strip("/")
    return f"{path}/{call}" if path else call


def parse_rule(text: str, path: str = "") -> PrintedRule:
    """One line of print_rule() output (sbin/pfctl/pfctl_parser.c)."""
    r = PrintedRule(text, path)
    words = _TOKEN.findall(text)
    w = _Words(words, r)
    head = w.take()
    if head == "@" or head.startswith("@"):  # -vv rule numbers
        head = w.take()
    if head == "no" and w.peek() in ("nat", "rdr", "binat", "scrub"):
        r.negated, head = True, w.take()
    if head in ("anchor", "nat-anchor", "rdr-anchor", "binat-anchor"):
        r.kind = head
        if w.peek() and w.peek().startswith('"'):
            r.call = w.take()[1:-1]
    elif head in ("pass", "block"):
        r.kind, r.action = "filter", head
        if head == "block":
            how = w.peek() or ""
            if how == "drop" or how.startswith("return"):
                w.take()
                if w.peek() and w.peek().startswith("("):
                    w.take()
    elif head in ("nat", "rdr", "binat"):
        r.kind = head
        if w.peek() == "pass":
            w.take()
            r.unmodelled.append(f"{head} pass (skips the filter rules)")
    elif head in ("match", "scrub"):
        r.kind = head
    else:
        r.kind = "unknown"
        r.unmodelled.append(f"rule type {head!r}")
        return r
    _rest(w, r)
    return r


class _Words:
    def __init__(self, words: list[str], rule: PrintedRule) -> None:
        self.words, self.i, self.rule = words, 0, rule

    def peek(self) -> str | None:
        return self.words[self.i] if self.i < len(self.words) else None

    def take(self) -> str:
        if self.i >= len(self.words):
            raise ValueError(f"pfctl listing: rule ends too early: {self.rule.text!r}")
        self.i += 1
        return self.words[self.i - 1]

    def accept(self, word: str) -> bool:
        if self.peek() == word:
            self.i += 1
            return True
        return False


def _rest(w: _Words, r: PrintedRule) -> None:
    if w.peek() in ("in", "out"):
        r.direction = w.take()
    if w.accept("log"):
        r.log = True
        if w.peek() and w.peek().startswith("("):
            w.take()
    if w.accept("quick"):
        r.quick = True
    if w.accept("on"):
        if w.accept("!"):
            r.interface_not = True
        r.interface = w.take()
    if w.peek() in ("route-to", "reply-to", "dup-to"):
        r.unmodelled.append(w.take())
        while w.peek() not in (None, "inet", "inet6", "proto", "all", "from"):
            w.take()
    if w.peek() in ("inet", "inet6"):
        r.af = 4 if w.take() == "inet" else 6
    if w.accept("proto"):
        r.proto = w.take()
    if w.accept("all"):
        pass
    elif w.accept("from"):
        r.src = _host(w, r)
        if w.peek() == "os":
            w.take()
            r.unmodelled.append(f"os {w.take()}")
        if w.take() != "to":
            raise ValueError(f"pfctl listing: no 'to' in {r.text!r}")
        r.dst = _host(w, r)
    while w.peek() is not None:
        word = w.take()
        if word == "user":
            r.user = _op(w, r, uid=True)
        elif word == "group":
            _op(w, r, uid=True)
            r.unmodelled.append("group")
        elif word == "flags":
            r.flags = w.take()
        elif word in ("icmp-type", "icmp6-type"):
            r.icmp_type = w.take()
            if w.peek() == "code":
                w.take()
                r.unmodelled.append(f"icmp code {w.take()}")
        elif word == "tag":
            r.tag = w.take()
        elif word == "tagged":
            r.tagged = w.take()
        elif word == "!" and w.peek() == "tagged":
            w.take()
            r.unmodelled.append(f"! tagged {w.take()}")
        elif word == "->":
            _target(w, r)
        elif word == "keep" and w.peek() == "state" or word in ("modulate", "synproxy") and w.peek() == "state":
            w.take()
            r.keep_state = True
            if w.peek() and w.peek().startswith("("):
                w.take()
        elif word == "no" and w.peek() == "state":
            w.take()
        elif word == "fragment":
            r.unmodelled.append("fragment")
        elif word in _HARMLESS:
            for _ in range(_HARMLESS[word]):
                if w.peek() is not None:
                    w.take()
            if w.peek() and w.peek().startswith("("):
                w.take()
        elif word.startswith("(") or word.startswith('"'):
            continue  # the argument of an option already noted
        else:
            r.unmodelled.append(word)
            while w.peek() is not None and w.peek() not in _KNOWN_WORDS:
                w.take()


# Where parsing picks up again after a word it does not know.
_KNOWN_WORDS = {"user", "group", "flags", "icmp-type", "icmp6-type", "tag", "tagged", "->", "keep", "modulate",
                "synproxy", "no", "fragment", *_HARMLESS}


def _host(w: _Words, r: PrintedRule) -> Host:
    neg = w.accept("!")
    word = w.take()
    if word == "any":
        h = Host("any", neg=neg)
    elif word.startswith("<") and word.endswith(">"):
        h = Host("table", word[1:-1], neg)
    elif word.startswith("(") and word.endswith(")"):  # an interface's addresses: (em0), (em0:0) ...
        h = Host("dynamic", word[1:-1], neg)
    elif word.startswith("("):  # (em0)/24: the interface's networks, masked
        h = Host("other", word, neg)
    elif word in ("self", "no-route", "urpf-failed", "route"):
        if word == "route":
            word += " " + w.take()
        h = Host("other", word, neg)
    else:
        h = Host("net", word, neg)
        if w.peek() == "-":  # an address range: A - B
            w.take()
            h = Host("other", f"{word} - {w.take()}", neg)
    if h.kind == "other":
        r.unmodelled.append(f"address {'! ' if neg else ''}{h.value}")
    if w.accept("port"):
        h.port = _op(w, r, uid=False)
    return h


def _number(word: str, r: PrintedRule, uid: bool) -> int:
    if word.isdigit():
        return int(word)
    if uid and word == "unknown":
        return -1
    if not uid:
        port = _PORT_BY_NAME.get(word) or _service(word, r.proto)
        if port is not None:
            return port
    r.unmodelled.append(f"{'user' if uid else 'port'} {word}")
    return -2


def _service(name: str, proto: str) -> int | None:
    """A port pfctl printed by name: print_port() names it with this host's
    services database (getservbyport), so this host's getservbyname reads it
    back."""
    import socket

    for p in ([proto] if proto in ("tcp", "udp") else ["tcp", "udp"]):
        try:
            return socket.getservbyname(name, p)
        except OSError:
            continue
    return None


def _op(w: _Words, r: PrintedRule, uid: bool) -> tuple[str, int, int]:
    """print_op(): `= A`, `!= A`, `< A` ..., `A >< B`, `A <> B`, `A:B`."""
    first = w.take()
    if first in _OPS:
        return first, _number(w.take(), r, uid), 0
    if w.peek() in _RANGE_OPS:
        op = w.take()
        return op, _number(first, r, uid), _number(w.take(), r, uid)
    low, colon, high = first.partition(":")
    if colon:
        return ":", _number(low, r, uid), _number(high, r, uid)
    r.unmodelled.append(f"{'user' if uid else 'port'} {first}")
    return "?", 0, 0


def _target(w: _Words, r: PrintedRule) -> None:
    word = w.take()
    if word.startswith("{") or word.startswith("("):
        r.unmodelled.append(f"translation to {word}")
        return
    r.target = word.split("/")[0] if word.endswith("/32") or word.endswith("/128") else word
    if "/" in r.target:
        r.unmodelled.append(f"translation to a network {word}")
    if w.accept("port"):
        port = w.take()
        low = port.split(":")[0]
        if low.isdigit():
            r.target_port = int(low)
        if ":" in port:
            r.unmodelled.append(f"translation to a port range {port}")
    while w.peek() not in (None,):
        word = w.take()
        if word in ("static-port", "round-robin", "random", "source-hash", "bitmask", "sticky-address"):
            if word != "static-port":
                r.unmodelled.append(word)
        elif word.startswith("(") or word.startswith("0x"):
            continue
        else:
            r.unmodelled.append(word)


# -- printing (what the simulated pfctl shows) ------------------------------------------------------

CHILD_HEAD = {"rules": "anchor", "nat": "nat-anchor"}


def listing(main: list[str], anchors: dict[str, list[str]], kind: str,
            children_of=None) -> str:
    """``pfctl -a '*' -s rules|nat`` for a main ruleset and anchors given as
    printed lines (anchor path -> lines of that class).  CHILDREN_OF(path)
    lists a wildcard's children in strcmp order (default: from ANCHORS)."""
    def children(base: str) -> list[str]:
        if children_of is not None:
            return children_of(base)
        prefix = base + "/" if base else ""
        names = {a[len(prefix):].split("/")[0] for a in anchors if a.startswith(prefix) and a != base}
        return sorted(names, key=lambda n: n.encode())

    out: list[str] = []

    def show(lines: list[str], path: str, depth: int) -> None:
        if kind == "nat":  # pfctl_show_nat() prints nat, then rdr, then binat rules
            lines = sorted(lines, key=_nat_order)
        for line in lines:
            call = _call_of(line)
            if call is None:
                out.append("  " * depth + line + "\n")
                continue
            out.append("  " * depth + line + " {\n")
            target = _resolve(path, call)
            if call.endswith("/*"):
                for name in children(target):
                    child = f"{target}/{name}" if target else name
                    out.append("  " * (depth + 1) + f'{CHILD_HEAD[kind]} "{name}" all {{\n')
                    show(anchors.get(child, []), child, depth + 2)
                    out.append("  " * (depth + 1) + "}\n")
            else:
                show(anchors.get(target, []), target, depth + 1)
            out.append("  " * depth + "}\n")

    show(main, "", 0)
    return "".join(out)


def _nat_order(line: str) -> int:
    head = line.split(" ", 1)[0]
    return {"nat": 0, "nat-anchor": 0, "rdr": 1, "rdr-anchor": 1}.get(head, 2)


def _call_of(line: str) -> str | None:
    m = re.match(r'(?:anchor|nat-anchor|rdr-anchor|binat-anchor) "([^"]*)"', line)
    return m.group(1) if m else None
