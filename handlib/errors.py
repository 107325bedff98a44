"""Every error handlib raises on purpose, in one leaf module (it imports nothing from handlib).

The CLI turns each into ``error: ...`` and exit code 2; the modules that raise them re-export them."""


class UsageError(Exception):
    """Bad user input detected after parsing (a file, a folder, a parameter); the CLI prints it as
    ``error: ...`` and exits with code 2, without a traceback."""


class CheckpointError(ValueError):
    """A checkpoint that cannot be read, or that belongs to another model / configuration."""


class DatasetFormatError(ValueError):
    """A dataset file that does not look like its format (names the file and what was expected)."""


class PublishedFileMissing(FileNotFoundError):
    """A published file is not in the cache and could not (or may not) be downloaded."""


class LabelFileError(ValueError):
    """A label/prediction file that does not have the expected shape or content."""
