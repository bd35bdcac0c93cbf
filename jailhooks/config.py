"""Load and validate the TOML configuration.

Validation collects every problem before failing, each with its key path
(``jail.web.ip4[1]: '10.0.0.300' is not an IPv4 address``), and rejects keys
that no one owns: a typo must never silently disable a firewall rule.

The core owns ``plugins``, ``[host]`` and the ``path``/``ip4``/``ip6`` keys of
``[jail.NAME]``.  Every other section belongs to a plugin, which declares it
with :class:`Section` from its ``jailhooks_config_sections`` hook; a jail may
override a section's per-jail keys in ``[jail.NAME.SECTION]``.
"""
from __future__ import annotations

import os
import re
import sys
from typing import Any, Callable, Iterable, Mapping

from . import validate
from .errors import ConfigError
from .logbook import FACILITIES
from .paths import absolute_path, default_config_path, default_state_dir  # noqa: F401 (part of this API)

Check = Callable[[Any], Any]  # returns the parsed value or raises ValueError
_MISSING = object()


class Field:
    """One key of a section: its checker, its default (none: required), its doc."""

    __slots__ = ("check", "default", "doc")

    def __init__(self, check: Check, default: Any = _MISSING, doc: str = "") -> None:
        self.check, self.default, self.doc = check, default, doc


class Section:
    """A config section owned by a plugin: ``[NAME]`` and ``[jail.J.NAME]``."""

    __slots__ = ("name", "fields", "jail_fields")

    def __init__(self, name: str, fields: Mapping[str, Field] | None = None,
                 jail_fields: Mapping[str, Field] | None = None) -> None:
        self.name = name
        self.fields = fields or {}
        self.jail_fields = jail_fields or {}


# --- checkers --------------------------------------------------------------

def integer(lo: int | None = None, hi: int | None = None) -> Check:
    def check(v: Any) -> int:
        if isinstance(v, bool) or not isinstance(v, int):
            raise ValueError(f"{v!r} is not an integer")
        if (lo is not None and v < lo) or (hi is not None and v > hi):
            raise ValueError(f"{v} is outside {lo}..{hi}")
        return v
    return check


def number(lo: float, hi: float) -> Check:
    def check(v: Any) -> float:
        if isinstance(v, bool) or not isinstance(v, (int, float)) or not lo <= v <= hi:
            raise ValueError(f"{v!r} is not a number in {lo}..{hi}")
        return float(v)
    return check


def boolean(v: Any) -> bool:
    if not isinstance(v, bool):
        raise ValueError(f"{v!r} is not true or false")
    return v


def choice(*options: str) -> Check:
    def check(v: Any) -> str:
        if v not in options:
            raise ValueError(f"{v!r} is not one of {', '.join(options)}")
        return v
    return check


def one_or_list(check: Check) -> Check:
    """A value or a list of values (TOML lets admins write either)."""
    inner = list_of(check)
    return lambda v: inner(v) if isinstance(v, list) else [check(v)]


class _Problems(Exception):
    def __init__(self, problems: list[tuple[str, str]]):
        self.problems = problems


def list_of(check: Check) -> Check:
    def run(v: Any) -> list:
        if not isinstance(v, list):
            raise ValueError(f"{type(v).__name__} is not a list")
        out, problems = [], []
        for i, item in enumerate(v):
            try:
                out.append(check(item))
            except ValueError as exc:
                problems.append((f"[{i}]", str(exc)))
            except _Problems as exc:
                problems.extend((f"[{i}]{k}", m) for k, m in exc.problems)
        if problems:
            raise _Problems(problems)
        return out
    return run


def table_of(fields: Mapping[str, Field]) -> Check:
    def run(v: Any) -> dict:
        if not isinstance(v, dict):
            raise ValueError(f"{type(v).__name__} is not a table")
        out, problems = _check_fields(v, fields, ".")
        if problems:
            raise _Problems(problems)
        return out
    return run


def _check_fields(raw: Mapping[str, Any], fields: Mapping[str, Field], sep: str,
                  fill_defaults: bool = True) -> tuple[dict, list[tuple[str, str]]]:
    out: dict[str, Any] = {}
    problems: list[tuple[str, str]] = []
    for key, value in raw.items():
        spec = fields.get(key)
        if spec is None:
            problems.append((f"{sep}{key}", "unknown key"))
            continue
        try:
            out[key] = spec.check(value)
        except ValueError as exc:
            problems.append((f"{sep}{key}", str(exc)))
        except _Problems as exc:
            problems.extend((f"{sep}{key}{k}", m) for k, m in exc.problems)
    for key, spec in fields.items():
        if key not in out and not any(p[0] == f"{sep}{key}" for p in problems):
            if spec.default is _MISSING:
                if fill_defaults:
                    problems.append((f"{sep}{key}", "is required"))
            elif fill_defaults:
                out[key] = spec.default() if callable(spec.default) else spec.default
    return out, problems


# --- the core's own sections -------------------------------------------------

COMMANDS = {
    "pfctl": "/sbin/pfctl",
    "ipfw": "/sbin/ipfw",
    "sysctl": "/sbin/sysctl",
    "jls": "/usr/sbin/jls",
    "jail": "/usr/sbin/jail",
    "route": "/sbin/route",
    "tcpdump": "/usr/sbin/tcpdump",
    "tail": "/usr/bin/tail",
}

HOST_FIELDS: dict[str, Field] = {
    "mode": Field(choice("auto", "freebsd", "simulated"), "auto"),
    "state_dir": Field(absolute_path, None),
    "timeout": Field(number(0.1, 3600), 30.0, "seconds a host command may run"),
    "lock_timeout": Field(number(0, 3600), 30.0, "seconds to wait for a lock before exit 75"),
    "commands": Field(table_of({k: Field(absolute_path, v) for k, v in COMMANDS.items()}), lambda: dict(COMMANDS)),
    "syslog_facility": Field(choice(*FACILITIES), "daemon",
                             "the syslog(3) facility of jailhooks' messages"),
}

def registry_url(v: Any) -> str:
    if not isinstance(v, str) or not (v == "" or v.startswith(("postgresql://", "postgres://"))):
        raise ValueError("must be empty (SQLite in the state directory) or a postgresql:// URL")
    return v


def host_label(v: Any) -> str:
    if not isinstance(v, str) or (v and not re.fullmatch(r"[A-Za-z0-9][A-Za-z0-9.-]{0,254}", v)):
        raise ValueError(f"{v!r} is not a host name")
    return v


REGISTRY_FIELDS: dict[str, Field] = {
    "url": Field(registry_url, "", "empty: SQLite in [host] state_dir; postgresql://...: a fleet registry"),
    "host": Field(host_label, "", "this host's name in the registry (default: the system's host name)"),
}

JAIL_FIELDS: dict[str, Field] = {
    "path": Field(absolute_path, None),
    "ip4": Field(one_or_list(lambda v: validate.jail_address(v, 4)), list),
    "ip6": Field(one_or_list(lambda v: validate.jail_address(v, 6)), list),
    "vnet": Field(boolean, False, "the jail has a network stack of its own (vnet); jls says so once it runs"),
}


class JailConfig:
    __slots__ = ("name", "path", "ip4", "ip6", "sections", "vnet")

    def __init__(self, name: str, path: str | None = None, ip4: list[str] | None = None,
                 ip6: list[str] | None = None, sections: dict[str, dict] | None = None, vnet: bool = False):
        self.name = name
        self.vnet = vnet
        self.path = path
        self.ip4 = ip4 if ip4 is not None else []
        self.ip6 = ip6 if ip6 is not None else []
        self.sections = sections if sections is not None else {}  # validated overrides only

    def __repr__(self) -> str:
        return f"JailConfig({self.name!r}, path={self.path!r}, ip4={self.ip4!r}, ip6={self.ip6!r})"


class Settings:
    __slots__ = ("source", "plugins", "host", "sections", "jails", "registry")

    def __init__(self, source: str, plugins: list[str], host: dict[str, Any], sections: dict[str, dict],
                 jails: dict[str, JailConfig], registry: dict[str, Any] | None = None):
        self.source = source
        self.plugins = plugins
        self.host = host
        self.sections = sections
        self.jails = jails
        self.registry = registry if registry is not None else {"url": "", "host": ""}

    def __repr__(self) -> str:
        return f"Settings(source={self.source!r}, plugins={self.plugins!r}, jails={sorted(self.jails)!r})"

    def section(self, name: str) -> dict:
        return self.sections.get(name, {})

    def for_jail(self, name: str, jail: str) -> dict:
        """The section's settings for one jail: globals, then the jail's overrides."""
        merged = dict(self.sections.get(name, {}))
        jc = self.jails.get(jail)
        if jc is not None:
            merged.update(jc.sections.get(name, {}))
        return merged

    @property
    def state_dir(self) -> str:
        return self.host["state_dir"]


def read_toml(path: str | None, missing_ok: bool = False) -> tuple[dict, str]:
    """Parse the file: (raw table, source name).  A missing file is an error
    (a host that lost its config must not quietly run on built-in defaults,
    say a local registry instead of the fleet's); MISSING_OK (the simulated
    host's own tool, ``jailhooks sim``) reads a missing default file as {}."""
    explicit = path is not None or bool(os.environ.get("JAILHOOKS_CONFIG"))
    path = path or os.environ.get("JAILHOOKS_CONFIG") or default_config_path()
    if sys.version_info >= (3, 11):
        import tomllib
    else:  # pragma: no cover - exercised on 3.10 in CI
        import tomli as tomllib
    import stat

    try:
        # O_NONBLOCK: a FIFO at the config path must not hang a jail start
        fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK | getattr(os, "O_CLOEXEC", 0))
        with os.fdopen(fd, "rb") as fh:
            if not stat.S_ISREG(os.fstat(fh.fileno()).st_mode):
                raise ConfigError("not a regular file", path)
            os.set_blocking(fh.fileno(), True)
            return tomllib.load(fh), path
    except FileNotFoundError:
        if explicit or not missing_ok:
            raise ConfigError("file not found: copy the sample configuration there (jailhooks.toml.sample, "
                              "contrib/jailhooks.toml in the source) or pass --config PATH", path) from None
        return {}, "(built-in defaults)"
    except PermissionError:
        raise ConfigError("permission denied", path) from None
    except IsADirectoryError:
        raise ConfigError("not a regular file", path) from None
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"not valid TOML: {exc}", path) from None
    except UnicodeDecodeError:
        raise ConfigError("not valid UTF-8", path) from None


class PluginChoice:
    """Which plugins load: the config's modules, the installed entry points
    (unless autoload is off: every installed entry point otherwise runs as
    root at every jail start), less the disabled ones."""

    __slots__ = ("modules", "autoload", "disabled", "firewall")

    def __init__(self, modules: list[str], autoload: bool = True, disabled: list[str] | None = None,
                 firewall: str = "pf") -> None:
        self.modules, self.autoload, self.disabled = modules, autoload, disabled or []
        self.firewall = firewall  # [firewall] backend: which built-in firewall plugin loads


FIREWALLS = ("pf", "ipfw")
CORE_KEYS = ("plugins", "host", "jail", "registry", "firewall")  # the core's own top-level keys


def firewall_backend(raw: dict, source: str) -> str:
    """``[firewall] backend``: the firewall the jails' policies go to; read,
    like ``plugins``, before any plugin is imported (it says which loads)."""
    value = raw.get("firewall", {})
    if not isinstance(value, dict):
        raise ConfigError("firewall: must be a table ([firewall] backend = \"pf\" or \"ipfw\")", source)
    unknown = sorted(set(value) - {"backend"})
    if unknown:
        raise ConfigError(f"firewall.{unknown[0]}: unknown key", source)
    backend = value.get("backend", "pf")
    if backend not in FIREWALLS:
        raise ConfigError(f"firewall.backend: {backend!r} is not one of {', '.join(FIREWALLS)}", source)
    return backend


def plugin_list(raw: dict, source: str) -> PluginChoice:
    """``plugins = ["mod", ...]``, or the table ``[plugins]`` with ``modules``,
    ``autoload`` and ``disabled``; validated before any plugin is imported."""
    value = raw.get("plugins", [])
    if isinstance(value, list):
        value = {"modules": value}
    if not isinstance(value, dict):
        raise ConfigError("plugins: must be a list of module names or a table", source)
    unknown = sorted(set(value) - {"modules", "autoload", "disabled"})
    if unknown:
        raise ConfigError(f"plugins.{unknown[0]}: unknown key", source)
    names: dict[str, list[str]] = {}
    for key in ("modules", "disabled"):
        found = value.get(key, [])
        if not isinstance(found, list) or not all(isinstance(m, str) for m in found):
            raise ConfigError(f"plugins{'.' + key if key != 'modules' or 'modules' in value else ''}: must be a list "
                              "of module names", source)
        for m in found:
            if not all(part.isidentifier() for part in m.split(".")):
                raise ConfigError(f"plugins: {m!r} is not a module name", source)
        names[key] = found
    autoload = value.get("autoload", True)
    if not isinstance(autoload, bool):
        raise ConfigError("plugins.autoload: must be true or false", source)
    return PluginChoice(names["modules"], autoload, names["disabled"], firewall_backend(raw, source))


def build_settings(raw: dict, source: str, sections: Iterable[Section]) -> Settings:
    """Validate the whole file against the core's and the plugins' sections."""
    by_name: dict[str, Section] = {}
    problems: list[str] = []
    for sec in sections:
        if sec.name in by_name or sec.name in CORE_KEYS or sec.name in JAIL_FIELDS:
            problems.append(f"section [{sec.name}] is claimed twice (core or another plugin)")
            continue
        by_name[sec.name] = sec

    def add(prefix: str, found: list[tuple[str, str]]) -> None:
        problems.extend(f"{prefix}{key}: {msg}" for key, msg in found)

    choice = plugin_list(raw, source)
    plugins = choice.modules
    host_raw = raw.get("host", {})
    host: dict = {}
    if isinstance(host_raw, dict):
        host, found = _check_fields(host_raw, HOST_FIELDS, ".")
        add("host", found)
    else:
        problems.append("host: must be a table")
    if host.get("state_dir") is None:
        host["state_dir"] = default_state_dir()

    registry: dict = {}
    registry_raw = raw.get("registry", {})
    if isinstance(registry_raw, dict):
        registry, found = _check_fields(registry_raw, REGISTRY_FIELDS, ".")
        add("registry", found)
    else:
        problems.append("registry: must be a table")

    values: dict[str, dict] = {"firewall": {"backend": choice.firewall}}
    for name, sec in by_name.items():
        section_raw = raw.get(name, {})
        if not isinstance(section_raw, dict):
            problems.append(f"{name}: must be a table")
            section_raw = {}
        values[name], found = _check_fields(section_raw, sec.fields, ".")
        add(name, found)

    jails: dict[str, JailConfig] = {}
    jail_raw = raw.get("jail", {})
    if not isinstance(jail_raw, dict):
        problems.append("jail: must be a table of [jail.NAME] tables")
        jail_raw = {}
    for jname, jtable in jail_raw.items():
        where = f"jail.{jname}"
        try:
            validate.jail_name(jname)
        except ValueError as exc:
            problems.append(f"{where}: {exc}")
            continue
        if not isinstance(jtable, dict):
            problems.append(f"{where}: must be a table")
            continue
        core = {k: v for k, v in jtable.items() if not isinstance(v, dict) or k in JAIL_FIELDS}
        parsed, found = _check_fields(core, JAIL_FIELDS, ".")
        add(where, found)
        jc = JailConfig(jname, parsed.get("path"), parsed.get("ip4", []), parsed.get("ip6", []),
                        vnet=parsed.get("vnet", False))
        for sub, subtable in jtable.items():
            if sub in core:
                continue
            sec = by_name.get(sub)
            if sec is None:
                problems.append(f"{where}.{sub}: unknown section")
                continue
            jc.sections[sub], found = _check_fields(subtable, sec.jail_fields, ".", fill_defaults=False)
            add(f"{where}.{sub}", found)
        jails[jname] = jc

    for key in raw:
        if key not in CORE_KEYS and key not in by_name:
            problems.append(f"{key}: unknown key")
    if problems:
        raise ConfigError(problems, source)
    return Settings(source, plugins, host, values, jails, registry)
