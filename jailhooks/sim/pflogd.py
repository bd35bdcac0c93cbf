"""The simulated host's pflogd(8) and rule counters: a packet ``sim send``
puts through the live rules is counted on the anchor rule that decided it
(Evaluations, Packets, Bytes, as ``pfctl -v -s rules`` prints; the
simulation counts on the deciding rule only), and what a logging rule
decided is appended to
``STATE_DIR/simhost/pflog`` as pflogd writes /var/log/pflog (a pcap file of
link type PFLOG; jailhooks/pf/pflog.py), with the header if_pflog.c fills:
the anchor rule's number in the main ruleset, the rule's number inside the
anchor, the anchor's own name (cut to 15 bytes), the socket's uid for a rule
that logs ``(user)``, and the rule's ``ridentifier``."""
from __future__ import annotations

import os
import re
import time

from ..pf import pflog
from ..pf.listing import parse_rule

UPLINK, UPLINK_ADDRESS = "em0", "192.0.2.1"  # the simulated host's uplink and its own address


def record(st, path: str, answer: dict) -> bool:
    """Count the packet of ANSWER (explain's, over the live rules) on the
    anchor rule that decided it, and append its record if that rule logs;
    True when it was logged."""
    anchor, text = answer.get("anchor"), answer.get("rule")
    if not anchor or not text or answer.get("verdict") not in ("pass", "block"):
        return False
    entry = st["pf"]["anchors"].get(anchor) or {}
    filters = entry.get("filter", [])
    if text not in filters:
        return False
    p = answer["packet"]
    size = (20 if ":" not in p["dst"] else 40) + {"tcp": 20, "udp": 8}.get(p["proto"], 8)
    counters = entry.setdefault("counters", {})
    evaluations, packets, octets, states = counters.get(str(filters.index(text)), [0, 0, 0, 0])
    keeps = answer["verdict"] == "pass" and " keep state" in text
    counters[str(filters.index(text))] = [evaluations + 1, packets + 1, octets + size, states + keeps]
    st["pf"]["anchors"][anchor] = entry
    if not parse_rule(text, anchor).log:
        return False
    parent = anchor.rsplit("/", 1)[0]
    main = st["pf"]["main"]["filter"]
    hook = next((i for i, line in enumerate(main) if line.startswith((f'anchor "{parent}/*"', f'anchor "{anchor}"'))),
                0)
    rid = re.search(r" ridentifier (\d+)", text)
    out = p["direction"] == "out"
    data = pflog.encode(time.time(), 0 if answer["verdict"] == "pass" else 1, p.get("iface") or UPLINK,
                        anchor.rsplit("/", 1)[-1], hook, filters.index(text),
                        p["uid"] if " log (user)" in text and out else None, 2 if out else 1,
                        int(rid.group(1)) if rid else 0, p["proto"], p["src"] or UPLINK_ADDRESS, p["dst"],
                        40000 if out else 50000, p["port"] or 0)
    fresh = not os.path.exists(path)
    with open(path, "ab") as fh:
        if fresh:
            fh.write(pflog.file_header())
        fh.write(data)
    return True
