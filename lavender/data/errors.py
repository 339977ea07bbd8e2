"""Error type for unreadable or inconsistent data files."""


class DataError(Exception):
    """A data file (TSV, lineidx, frame, annotation) is missing, corrupt or inconsistent.

    The message always names the file and, where known, the row / key / frame index.
    """
