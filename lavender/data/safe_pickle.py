"""Reading the plain pickles of the data formats without letting a file run code.

``img_{dataset}.id2lineidx.pkl`` ({key: byte offset}) and the frame pickles of
``_tools/extract_video-frame.py`` ({video id: [base64 frame, ...]}) hold only builtin containers
and scalars. A pickle can also name any importable function and call it while loading (that is how
a crafted file runs code), so these files are read by an unpickler that refuses every such
reference: only what pickle's own opcodes build loads (dicts, lists, tuples, strings, bytes, numbers,
booleans, None; in protocol 3 and later, which every Python 3 writer uses by default).
"""
import pickle

from ..errors import DataError

__all__ = ["load_plain_pickle"]


class _Refused(Exception):
    pass


class _PlainUnpickler(pickle.Unpickler):
    """Builds only what the pickle opcodes build by themselves: no imports, no calls."""

    def find_class(self, module, name):
        raise _Refused(f"{module}.{name}")

    def persistent_load(self, pid):
        raise _Refused(f"persistent id {pid!r}")


def load_plain_pickle(path, what: str, rebuild: str):
    """The object pickled in `path`; DataError (naming the file, `what` it should be and how to
    `rebuild` it) if the file is unreadable or refers to anything but builtin containers and scalars."""
    path = str(path)
    try:
        with open(path, "rb") as f:
            return _PlainUnpickler(f).load()
    except _Refused as e:
        raise DataError(f"{path}: refused to unpickle: it refers to {e}, but a {what} holds only builtin "
                        f"containers and scalars (dict, list, str, bytes, int), so this file is not one "
                        f"(a crafted or foreign file?); {rebuild}") from None
    except (FileNotFoundError, PermissionError, IsADirectoryError):
        raise
    except Exception as e:  # truncated or not a pickle at all: a data problem for the user
        raise DataError(f"{path}: not a readable {what} ({type(e).__name__}: {e}); {rebuild}") from None
