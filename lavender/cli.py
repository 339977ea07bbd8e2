"""Command-line entry points: a user's mistake ends as one clear message on stderr, not a traceback.

    if __name__ == "__main__":
        sys.exit(main_guard(main))      # main(argv) -> exit status

The errors that describe bad input (a config key, a data or weights file, a path the user gave:
ConfigError, DataError and its CheckpointError, FileNotFoundError, PermissionError, ...) already
name the file, key or row and say what to do; the traceback would only hide that line. ``--debug``
(anywhere on the command line) or the environment variable ``LAVENDER_DEBUG=1`` keeps it.
"""
import os
import sys

from .errors import ConfigError, DataError

__all__ = ["USER_ERRORS", "EXIT_USER_ERROR", "debug_requested", "main_guard", "user_message"]

# FloatingPointError: a training loss that is not finite, stopped with where and how to go on
USER_ERRORS = (ConfigError, DataError, FileNotFoundError, PermissionError, IsADirectoryError, NotADirectoryError,
               FloatingPointError)
EXIT_USER_ERROR = 2  # as argparse for a bad command line


def debug_requested(argv) -> bool:
    return "--debug" in argv or os.environ.get("LAVENDER_DEBUG", "").strip() not in ("", "0")


def user_message(err) -> str:
    """The message of a user error. One raised in a DataLoader worker arrives re-raised with the
    worker's traceback in its text ("Caught DataError in DataLoader worker process 0 ..."): keep only
    the original message, so the user sees the same line as with ``n_workers 0``."""
    text = str(err)
    if text.startswith("Caught ") and "Original Traceback" in text:
        cls = type(err)
        last_frame = text.rfind("\n  File ")
        for name in (f"{cls.__module__}.{cls.__qualname__}: ", f"{cls.__qualname__}: "):
            at = text.find(name, last_frame)
            if at >= 0:
                return text[at + len(name):].strip()
    return text


def main_guard(main, argv=None) -> int:
    """Run ``main(argv)`` (argv without ``--debug``) and return its exit status; a user error is
    printed as ``error: <message>`` on stderr and gives EXIT_USER_ERROR, unless debugging is asked for."""
    argv = list(sys.argv[1:] if argv is None else argv)
    debug = debug_requested(argv)
    try:
        return main([a for a in argv if a != "--debug"])
    except USER_ERRORS as e:
        if debug:
            raise
        print(f"error: {user_message(e)}", file=sys.stderr)
        return EXIT_USER_ERROR
