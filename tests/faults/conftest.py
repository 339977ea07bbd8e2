import logging
import os
import runpy
import sys

import pytest

from tiny import make_color_world

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


@pytest.fixture(scope="module")
def world(tmp_path_factory):
    """A colour world with one open-ended QA task, `tiny-qa` (8 videos), for a module's tests."""
    return make_color_world(str(tmp_path_factory.mktemp("world")), n_videos=8, tasks={"tiny-qa": "qa"})


@pytest.fixture
def marker(tmp_path):
    """A path that a crafted file's payload would create: it must not exist after the test."""
    m = tmp_path / "PAYLOAD_RAN"
    yield m
    assert not m.exists(), "code from the file ran"


def _drop_console_handlers():
    lg = logging.getLogger("lavender")
    for h in [h for h in lg.handlers if type(h) is logging.StreamHandler]:
        lg.removeHandler(h)


@pytest.fixture
def script(capsys):
    """Run an entry script (`main_*.py`, `eval_retrieval_tsv.py`, `_tools/*.py`) in this process as
    `python SCRIPT ARGS` would: returns (exit status, stdout, stderr). An exception that escapes the
    script (a traceback for the user) gives status 1 and a `Traceback` line on stderr."""
    def run(name, argv):
        path = os.path.join(REPO, name)
        saved = sys.argv
        sys.argv = [path] + [str(a) for a in argv]
        _drop_console_handlers()  # a run's console log goes to this test's stderr
        rc = 0
        try:
            runpy.run_path(path, run_name="__main__")
        except SystemExit as e:
            rc = e.code if isinstance(e.code, int) else int(e.code is not None)
        except Exception as e:
            rc = 1
            print(f"Traceback (escaped the script): {type(e).__name__}: {e}", file=sys.stderr)
        finally:
            sys.argv = saved
            _drop_console_handlers()
        out, err = capsys.readouterr()
        return rc, out, err
    return run


@pytest.fixture
def refused():
    """check(rc, err, *parts): a refusal is exit status 2 and one `error:` line holding every `parts`, with no
    traceback; returns the line."""
    def check(rc, err, *parts):
        lines = [line for line in err.splitlines() if line.startswith("error:")]
        assert rc == 2 and len(lines) == 1 and "Traceback" not in err, (rc, err[-3000:])
        for p in parts:
            assert p in lines[0], (p, lines[0])
        return lines[0]
    return check
