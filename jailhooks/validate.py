"""Validation of every value that can reach a command line, a path or a pf rule.

Each checker returns the canonical value or raises ValueError with a short
reason; callers add *where* (config key, CLI option, jail) to the message.
The accepted sets are deliberately narrower than what FreeBSD accepts: a value
that could be read as a pf token, an option, or a path step is refused.
"""
from __future__ import annotations

import re

# The checks every jail start needs (names, IPv4 addresses, ports) are plain
# string tests; rarer values (networks, IPv6, anchor paths) use patterns and
# ipaddress, imported when needed.
#
# jail(8): a name may not contain "." (hierarchy) and may not be numeric unless
# it is the jid; it must fit MAXHOSTNAMELEN (255 bytes).  We further allow only
# characters that are safe in a path, an argv element and a pf string.
_JAIL_NAME_CHARS = frozenset("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789_-")
JAIL_NAME_MAX = 255
# pf anchor path components must be shorter than PF_ANCHOR_NAME_SIZE (64).
ANCHOR_COMPONENT_MAX = 63
_ANCHOR_PATH = r"[A-Za-z0-9][A-Za-z0-9_.-]*(/[A-Za-z0-9][A-Za-z0-9_.-]*)*"
# PF_TABLE_NAME_SIZE is 32 (31 characters), PF_TAG_NAME_SIZE / PF_RULE_LABEL_SIZE 64.
TABLE_NAME_MAX = 31
_TABLE_NAME = r"[A-Za-z_][A-Za-z0-9_]*"
# IFNAMSIZ is 16 (15 characters); interface names are letters then letters/digits/._
_IFNAME = r"[A-Za-z][A-Za-z0-9_.]{0,14}"


def exact(value: object) -> object:
    """VALUE copied into its exact built-in type when it is a str, int or bool
    (a plugin's ``str`` subclass may override ``__format__``, ``__eq__``,
    ``__str__``, ``__hash__`` ...: the copy has none of that); other values
    are returned as they are, for the caller to refuse."""
    if isinstance(value, bool):
        return value is True  # bool cannot be subclassed; this is True or False
    if isinstance(value, str):
        return str.__str__(value)  # the base slot: an exact str with the same characters
    if isinstance(value, int):
        return int.__int__(value)
    return value


def jail_name(value: object) -> str:
    value = exact(value)
    if not isinstance(value, str):
        raise ValueError("jail name must be a string")
    if not value:
        raise ValueError("jail name is empty")
    if len(value.encode()) > JAIL_NAME_MAX:
        raise ValueError(f"jail name is longer than {JAIL_NAME_MAX} bytes")
    # a child jail is named PARENT.CHILD (jail(8), "Hierarchical Jails"); each
    # component follows the same rules as a top-level name
    for part in value.split("."):
        if not part:
            raise ValueError(f"jail name {value!r} has an empty component (jail(8) names children PARENT.CHILD)")
        if part.startswith("-") or not _JAIL_NAME_CHARS.issuperset(part):
            raise ValueError(f"jail name {value!r} may only contain letters, digits, '_' and '-' (and '.' between "
                             "a parent's and a child's name), and may not start with '-' (nor may a child's name)")
    if value.isdigit():
        raise ValueError(f"jail name {value!r} is numeric (jail(8) takes it as a jid)")
    return value


def _digest(value: str, n: int) -> str:
    import hashlib  # only long or odd names need it

    return hashlib.sha256(value.encode()).hexdigest()[:n]


def shown(text: str, limit: int = 64) -> str:
    """TEXT from outside (a plugin's name, an account in a jail's passwd) made
    safe to print in a comment or a report line: letters, digits and
    _.:-$/,=@+ kept, anything else (spaces, newlines, escapes) shown as '?'."""
    return "".join(c if c.isascii() and (c.isalnum() or c in "_.:-$/,=@+") else "?" for c in text[:limit])


def escaped(text: str, limit: int = 600) -> str:
    """A message that may carry text from outside (a jls path, a plugin's
    exception, a rule pfctl printed) made safe for a terminal and a log line:
    printable ASCII kept, anything else (newlines, escapes, other control
    characters, non-ASCII) shown as a Python escape (\\x1b, \\n, \\u00e9)."""
    text = str.__str__(text) if isinstance(text, str) else str(text)
    out = "".join(c if " " <= c <= "~" else c.encode("unicode_escape").decode("ascii") for c in text[:limit])
    return out + ("..." if len(text) > limit else "")


def bounded(name: str, limit: int) -> str:
    """A valid jail name shortened injectively to at most LIMIT characters.

    Short names stay as they are.  Longer ones, and ones with a leading '_'
    (pfctl reserves those), become PREFIX.-HASH: no component of a jail name
    starts with '-', so ".-" is in no jail name and a shortened name never
    equals a verbatim one (a jailed root names its child jails PARENT.CHILD,
    and could otherwise aim one at another jail's shortened name).
    """
    if len(name) <= limit and not name.startswith("_"):
        return name
    prefix = name.lstrip("_")[: max(1, limit - 18)].rstrip(".") or "jail"
    return f"{prefix}.-{_digest(name, 16)}"


def anchor_component(name: str) -> str:
    """The pf anchor path component for a jail (each component < 64 bytes)."""
    return bounded(name, ANCHOR_COMPONENT_MAX)


def pf_identifier(prefix: str, name: str, limit: int) -> str:
    """A table or tag name for a jail, injective over jail names.

    PREFIX_NAME when NAME is plain letters and digits and fits; otherwise
    PREFIX_x_HASH, which has two underscores and so never equals a plain form.
    """
    candidate = f"{prefix}_{name}"
    if name.isascii() and name.isalnum() and len(candidate) <= limit:
        return candidate
    return f"{prefix}_x_{_digest(name, 12)}"


def anchor_path(value: object) -> str:
    if not isinstance(value, str) or not re.fullmatch(_ANCHOR_PATH, value):
        raise ValueError("anchor path must be components of [A-Za-z0-9_.-] separated by '/', not starting with '_', '.' or '-'")
    for part in value.split("/"):
        if len(part) > ANCHOR_COMPONENT_MAX or part in (".", "..") or ".." in part:
            raise ValueError(f"anchor path component {part!r} is not allowed")
    return value


def table_name(value: object) -> str:
    value = exact(value)
    if not isinstance(value, str) or not re.fullmatch(_TABLE_NAME, value) or len(value) > TABLE_NAME_MAX:
        raise ValueError(f"table name must be [A-Za-z_][A-Za-z0-9_]* of at most {TABLE_NAME_MAX} characters")
    return value


def interface(value: object) -> str:
    value = exact(value)
    if not isinstance(value, str) or not re.fullmatch(_IFNAME, value):
        raise ValueError("not an interface name (a letter, then letters, digits, '_' or '.', at most 15)")
    return value


def re_interface(text: str) -> bool:
    """TEXT is an interface name (no exception)."""
    return bool(re.fullmatch(_IFNAME, text))


def _no_scope(text: str) -> None:
    if "%" in text:
        raise ValueError("scoped IPv6 addresses are not supported")


def _decimal(text: str, digits: int) -> bool:
    """TEXT is 1..DIGITS ASCII decimal digits."""
    return 0 < len(text) <= digits and text.isascii() and text.isdigit()


def dotted_quad(text: str) -> bool:
    """TEXT is an IPv4 address in canonical form (no leading zeros), the form
    ipaddress would give back unchanged."""
    parts = text.split(".")
    return len(parts) == 4 and all(_decimal(p, 3) and int(p) <= 255 and (p == "0" or p[0] != "0")
                                   for p in parts)


def ipv4(value: object) -> str:
    value = exact(value)
    if not isinstance(value, str):
        raise ValueError("not an IPv4 address")
    if dotted_quad(value):
        return value
    import ipaddress

    try:
        return str(ipaddress.IPv4Address(value))
    except ValueError:
        raise ValueError(f"{value!r} is not an IPv4 address") from None


def ipv6(value: object) -> str:
    value = exact(value)
    if not isinstance(value, str):
        raise ValueError("not an IPv6 address")
    _no_scope(value)
    import ipaddress

    try:
        return str(ipaddress.IPv6Address(value))
    except ValueError:
        raise ValueError(f"{value!r} is not an IPv6 address") from None


def jail_address(value: object, family: int) -> str:
    """An address as jail(8) configs write it: [iface|]addr[/mask]; returns addr."""
    value = exact(value)
    if not isinstance(value, str):
        raise ValueError(f"not an IPv{family} address")
    text = value.strip()
    if "|" in text:
        iface, text = text.split("|", 1)
        interface(iface)
    text = text.split(" ", 1)[0]  # jail(8) allows trailing ifconfig arguments
    if "/" in text:
        text, mask = text.split("/", 1)
        if not _decimal(mask, 3):
            raise ValueError(f"{value!r} has a bad prefix length")
    return ipv4(text) if family == 4 else ipv6(text)


def network(value: object) -> str:
    """A host or network (CIDR) of either family, canonical."""
    value = exact(value)
    if not isinstance(value, str):
        raise ValueError("not an address or network")
    if dotted_quad(value):
        return value
    _no_scope(value)
    import ipaddress

    try:
        if "/" in value:
            return str(ipaddress.ip_network(value, strict=True))
        return str(ipaddress.ip_address(value))
    except ValueError as exc:
        raise ValueError(f"{value!r} is not an address or network ({exc})") from None


def destination(value: object) -> str:
    """A rule destination: address, network, 'any', or <table> of the main ruleset."""
    value = exact(value)
    if value == "any":
        return "any"
    if isinstance(value, str) and value.startswith("<") and value.endswith(">"):
        return f"<{table_name(value[1:-1])}>"
    return network(value)


def port(value: object) -> str:
    """A port (1-65535) or an inclusive range 'LOW:HIGH'; returned as pf text."""
    value = exact(value)
    if isinstance(value, bool):
        raise ValueError("a port must be a number or 'LOW:HIGH'")
    if isinstance(value, int):
        if 1 <= value <= 65535:
            return str(value)
        raise ValueError(f"port {value} is outside 1-65535")
    if isinstance(value, str) and _decimal(value, 5):
        return port(int(value))
    if isinstance(value, str) and value.count(":") == 1 and all(_decimal(x, 5) for x in value.split(":")):
        low, high = (int(x) for x in value.split(":"))
        if 1 <= low <= high <= 65535:
            return f"{low}:{high}"
    raise ValueError(f"port {value!r} is not a number 1-65535 or a range 'LOW:HIGH'")


# UIDs: (uid_t)-1 means "no change", and pf matches a block as
# "user FIRST-1 >< LAST+1" with LAST+1 below UID_MAX (4294967295): so no block
# may end above 4294967293.  Below 1000: the system's and the ports' users.
UID_BLOCK_MIN, UID_BLOCK_MAX = 1000, 4294967293
RESERVED_UIDS = {65533: "nogroup", 65534: "nobody"}


def uid_block(first: object, last: object) -> tuple[int, int]:
    """A UID block jailhooks may hand out or accept (import, recovery)."""
    if not all(isinstance(v, int) and not isinstance(v, bool) for v in (first, last)):
        raise ValueError(f"UIDs {first!r}-{last!r} are not integers")
    if not UID_BLOCK_MIN <= first <= last <= UID_BLOCK_MAX:  # type: ignore[operator]
        raise ValueError(f"UIDs {first}-{last} are not a block within {UID_BLOCK_MIN}-{UID_BLOCK_MAX}")
    hit = [f"{uid} ({who})" for uid, who in RESERVED_UIDS.items() if first <= uid <= last]  # type: ignore[operator]
    if hit:
        raise ValueError(f"UIDs {first}-{last} contain reserved ids {', '.join(hit)}")
    return first, last  # type: ignore[return-value]


def fib_number(value: object) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or not 0 <= value < 65536:
        raise ValueError(f"FIB {value!r} is not a number 0-65535")
    return value
