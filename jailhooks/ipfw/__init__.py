"""The ipfw backend: a jail's policy as ipfw(8) rules, matched by the kernel's
own ``jail`` option.

* ``render.py``: the policy as numbered rules in the jail's own range, in two
  forms: *held* (before the jail exists: keyed on its addresses and UID
  block) and *jailed* (from ``exec.created`` on: ``jail JID``);
* ``rules.py``: rules as ``ipfw list`` prints them, read back, and evaluated
  with ipfw's semantics (rule-number order, first match, ``count`` and
  ``skipto``, ``check-state``/``keep-state``, ``jail``, ``uid``, ``lookup``);
* ``prove.py``: the jail's probe packets (jailhooks/probes.py) over its own
  rules alone and over everything ipfw holds.
"""
