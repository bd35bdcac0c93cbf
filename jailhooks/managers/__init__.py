"""Readers of the jail managers' own configuration (read-only).

Each reader answers "what are jail NAME's path and addresses?" from the files
its manager writes, tolerates keys it does not know, and reports a broken
file as a DataError naming the file (and line).  Used by the built-in
``managers`` plugin through the facts hook.
"""
