"""Errors every layer may raise; a leaf module (imports nothing from handlib)."""


class UsageError(Exception):
    """Bad user input detected after parsing (a file, a folder, a parameter); the CLI prints it as
    ``error: ...`` and exits with code 2, without a traceback."""
