"""Built-in plugins.  Each is an ordinary plugin module, written the way a
site plugin would be, and imports nothing heavy at module level."""
