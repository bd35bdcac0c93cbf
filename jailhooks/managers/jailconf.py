"""A reader for jail.conf(5): /etc/jail.conf, /etc/jail.conf.d/NAME.conf and
Bastille's per-jail jail.conf.

Covers the syntax those files use: ``param = value;``, ``param += value;``,
boolean ``param;``, comma lists, ``$var = "...";`` variables, ``$name`` /
``${param}`` substitution in unquoted and double-quoted text (not in
single-quoted text), ``#``, ``//`` and ``/* */`` comments, the ``*`` section
and quoted wildcard sections such as ``"foo.*"``, and ``.include``.
"""
from __future__ import annotations

import os
import re

from ..errors import DataError
from . import read_file

_TOKEN = (r'''
    (?P<ws>\s+) | (?P<comment>\#[^\n]*|//[^\n]*|/\*.*?\*/)
  | (?P<dq>"(?:[^"\\]|\\.)*") | (?P<sq>'[^']*')
  | (?P<op>\+=|[{};=,])
  | (?P<word>[^\s{};=,"'#]+)
''')  # compiled on first use (a prestart reads jail.conf only when one exists)


def _tokens(text: str, path: str):
    pos, line = 0, 1
    while pos < len(text):
        m = re.compile(_TOKEN, re.X | re.S).match(text, pos)  # re caches the compiled pattern
        if not m:
            raise DataError(f"{path}:{line}: cannot read jail.conf syntax near {text[pos:pos + 20]!r}")
        kind = m.lastgroup
        if kind not in ("ws", "comment"):
            yield kind, m.group(), line
        line += m.group().count("\n")
        pos = m.end()


class Statement:
    __slots__ = ("key", "op", "values", "line")

    def __init__(self, key: str, op: str, values: list[tuple[str, str]], line: int):
        self.key, self.op, self.values, self.line = key, op, values, line


def parse(text: str, path: str, _within: tuple[str, ...] = ()) -> list[tuple[str | None, Statement]]:
    """(section or None, statement) in file order; includes are followed
    (an include of a file that is already being read is an error, not a loop)."""
    within = _within + (os.path.realpath(path),)
    out: list[tuple[str | None, Statement]] = []
    toks = list(_tokens(text, path))
    i, section = 0, None
    while i < len(toks):
        kind, tok, line = toks[i]
        if kind == "op" and tok == "}":
            if section is None:
                raise DataError(f"{path}:{line}: unexpected '}}'")
            section, i = None, i + 1
            continue
        if kind not in ("word", "dq", "sq"):
            raise DataError(f"{path}:{line}: unexpected {tok!r}")
        name = tok.strip('"\'') if kind != "word" else tok
        if i + 1 < len(toks) and toks[i + 1][1] == "{":
            if section is not None:
                raise DataError(f"{path}:{line}: nested section {name!r}")
            section, i = name, i + 2
            continue
        if name == ".include":
            target = toks[i + 1][1].strip('"\'') if i + 1 < len(toks) else ""
            import glob

            from . import note_read

            note_read(os.path.dirname(target) or ".")  # a file that comes to match the pattern
            for inc in sorted(glob.glob(target)):
                if os.path.realpath(inc) in within:
                    raise DataError(f"{path}:{line}: .include {inc} includes a file that is being read (a loop)")
                out.extend(parse(read_file(inc) or "", inc, within))
            i += 3
            continue
        i += 1
        op, values = "=", []
        if i < len(toks) and toks[i][1] in ("=", "+="):
            op = toks[i][1]
            i += 1
            while i < len(toks) and toks[i][1] != ";":
                vkind, vtok, _ = toks[i]
                if vtok in ("{", "}"):
                    raise DataError(f"{path}:{line}: missing ';' after {name}")
                if vtok != ",":
                    if vkind not in ("word", "dq", "sq"):
                        raise DataError(f"{path}:{toks[i][2]}: unexpected {vtok!r} in the value of {name}")
                    values.append((vkind, vtok))
                i += 1
        else:
            values = [("word", "true")]  # a boolean given by name alone
        if i >= len(toks) or toks[i][1] != ";":
            raise DataError(f"{path}:{line}: missing ';' after {name}")
        i += 1
        out.append((section, Statement(name, op, values, line)))
    if section is not None:
        raise DataError(f"{path}: section {section!r} is not closed")
    return out


def _wildcard(pattern: str, jail: str) -> bool:
    import fnmatch

    return fnmatch.fnmatchcase(jail, pattern)


def _expand(value: str, params: dict[str, list[str]], variables: dict[str, str], path: str, line: int) -> str:
    def sub(m: re.Match) -> str:
        key = m.group(1) or m.group(2)
        if key in variables:
            return variables[key]
        if key in params and len(params[key]) == 1:
            return params[key][0]
        raise DataError(f"{path}:{line}: variable \"{key}\" not found")
    return re.sub(r"\$\{([^}]+)\}|\$([A-Za-z_][A-Za-z0-9_]*)", sub, value)


def jail_params(statements: list[tuple[str | None, Statement]], jail: str, path: str) -> dict[str, list[str]] | None:
    """The jail's parameters: global ones, then matching wildcard sections, then its own.
    None if no section names the jail."""
    if not any(sec is not None and sec == jail for sec, _ in statements):
        return None
    params: dict[str, list[str]] = {"name": [jail]}
    variables: dict[str, str] = {}
    for sec, st in statements:
        if sec is not None and sec != jail and not ("*" in sec and _wildcard(sec, jail)):
            continue
        values = []
        for kind, tok in st.values:
            if kind == "sq":
                values.append(tok[1:-1])
            else:
                raw = tok[1:-1].replace('\\"', '"') if kind == "dq" else tok
                values.append(_expand(raw, params, variables, path, st.line))
        if st.key.startswith("$"):
            variables[st.key[1:].strip("{}")] = values[0] if values else ""
        elif st.op == "+=":
            params.setdefault(st.key, []).extend(values)
        else:
            params[st.key] = values
    return params


def read(path: str, jail: str) -> dict | None:
    """Facts of JAIL from a jail.conf file, or None if it does not configure it."""
    text = read_file(path)
    if text is None:
        return None
    params = jail_params(parse(text, path), jail, path)
    if params is None:
        return None
    return facts(params)


def facts(params: dict[str, list[str]]) -> dict:
    def addrs(key: str) -> list[str]:
        return [v for value in params.get(key, []) for v in value.split(",") if v.strip()]

    return {"path": (params.get("path") or [None])[0], "ip4": addrs("ip4.addr"), "ip6": addrs("ip6.addr"),
            "hostname": (params.get("host.hostname") or [None])[0], "params": params}


def exec_hooks(path: str, jail: str) -> dict[str, list[str]]:
    """The jail's exec.* commands after inheritance (for `install` and checks)."""
    params = jail_params(parse(read_file(path) or "", path), jail, path) or {}
    return {k: v for k, v in params.items() if k.startswith("exec.")}


def jail_names(path: str) -> list[str]:
    if not os.path.exists(path):
        return []
    return sorted({sec for sec, _ in parse(read_file(path) or "", path) if sec and "*" not in sec})
