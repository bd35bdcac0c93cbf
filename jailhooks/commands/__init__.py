"""The commands, by job: run.py (what the jail managers call; the hook path
loads only it), admin.py (status, render, sync, check, release, registry,
plugins) and install.py (what each manager needs).  cli.py parses their
command lines, main.py the hook path's."""
