"""The errors that describe bad input, shared by every layer of the package.

Each message names the file, key or row and says what to do; entry scripts print it as one
`error: ...` line (lavender.run.main_guard) instead of a traceback.
"""

__all__ = ["ConfigError", "DataError", "CheckpointError", "OutputError"]


class ConfigError(ValueError):
    """A bad key or value in a config file or on the command line."""


class DataError(Exception):
    """A data file (TSV, lineidx, frame, annotation) is missing, corrupt or inconsistent.

    The message always names the file and, where known, the row / key / frame index.
    """


class CheckpointError(DataError):
    """A weights file that cannot be used: unreadable, needing full unpickling without trust_checkpoint,
    or not fitting the model."""


class OutputError(Exception):
    """An output file could not be written for want of room (disk full, quota, file-size limit); the
    message names the file and the free space."""
