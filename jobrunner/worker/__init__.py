"""Prefork workers: forked once, reused, talking to the supervisor over pipes."""
