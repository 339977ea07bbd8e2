"""The installable package: pyproject's build section installs the project editable into a fresh venv
(as _tools/setup.sh does); `import lavender` then works from any folder, and the notebook example of
docs/your-videos.md#from-python runs there, outside the repository; the public API stays lazy."""
import json
import os
import re
import shutil
import subprocess
import sys
import sysconfig

import pytest

from lavender.paths import REPO_ROOT
from tiny import _frame, make_color_world, tiny_argv, write_video

PACKAGE_FILES = ("lavender", "pyproject.toml", "README.md", "requirements.txt")


def notebook_example():
    """The first python block under '## From Python' of docs/your-videos.md."""
    text = open(os.path.join(REPO_ROOT, "docs", "your-videos.md"), encoding="utf-8").read()
    section = text.split("## From Python", 1)[1]
    return re.search(r"```python\n(.*?)```", section, re.S).group(1)


@pytest.fixture(scope="module")
def venv(tmp_path_factory):
    """A fresh venv that sees this one's dependencies (a .pth) but not the repository, with a copy of the
    project installed editable by pip from the build section."""
    root = tmp_path_factory.mktemp("pkg")
    src = root / "src"
    src.mkdir()
    for name in PACKAGE_FILES:
        (shutil.copytree if os.path.isdir(os.path.join(REPO_ROOT, name)) else shutil.copy)(
            os.path.join(REPO_ROOT, name), src / name)
    base = getattr(sys, "_base_executable", sys.executable)
    subprocess.run([base, "-m", "venv", "--without-pip", str(root / "venv")], check=True)
    py = str(root / "venv" / "bin" / "python")
    purelib = subprocess.run([py, "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
                             capture_output=True, text=True, check=True).stdout.strip()
    with open(os.path.join(purelib, "zz_dependencies.pth"), "w") as f:
        f.write(sysconfig.get_paths()["purelib"] + "\n")
    p = subprocess.run([sys.executable, "-m", "pip", "--python", py, "install", "-q", "--no-deps",
                        "--no-build-isolation", "-e", str(src)], capture_output=True, text=True)
    assert p.returncode == 0, p.stderr[-2000:]
    return py, src


def _python(py, code, cwd, timeout=600):
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "PYTHONHOME")}
    return subprocess.run([py, "-c", code], cwd=str(cwd), capture_output=True, text=True, timeout=timeout,
                          env=dict(env, HF_HUB_OFFLINE="1"))


def test_import_from_any_folder_is_the_installed_package_and_lazy(venv, tmp_path):
    py, src = venv
    p = _python(py, "import sys, lavender; print(lavender.__path__[0]); print('torch' in sys.modules); "
                    "print(lavender.Predictor.__module__); print(sorted(lavender.__all__))", cwd="/")
    assert p.returncode == 0, p.stderr
    path, torch_loaded, module, names = p.stdout.splitlines()
    assert path == str(src / "lavender") and torch_loaded == "False" and module == "lavender.inference"
    assert names == str(sorted(["Predictor", "__version__", "check", "train"]))


def test_the_notebook_example_runs_outside_the_repository(venv, tmp_path):
    """The example, with a tiny config and a colour-world mp4 in place of the demo's, from a folder that is
    neither the repository nor the installed copy."""
    py, _ = venv
    world = make_color_world(str(tmp_path / "world"), n_videos=16, tasks={"tiny-qa": "qa"})
    config = tiny_argv(world, tmp_path / "cfg", "tiny-qa", "qaoe", size_epoch=3, lr=2e-3)[1]
    video = write_video(tmp_path / "red.mp4", [_frame("red", "circle", t, __import__("random").Random(0))
                                               for t in range(4)])
    code = notebook_example()
    line = re.search(r"^config, video = .*$", code, re.M)
    assert line, "the example starts by naming its config and video"
    code = code.replace(line.group(0), f"config, video = {config!r}, {str(video)!r}")
    notebook = tmp_path / "notebook"
    notebook.mkdir()
    p = _python(py, code + "\nimport json; print(json.dumps({'log': log, 'answers': answers}))", cwd=notebook)
    assert p.returncode == 0, p.stderr[-3000:]
    out = json.loads(p.stdout.strip().splitlines()[-1])
    assert out["log"]["epoch"] == [1, 2, 3] and "ac_1_vl" in out["log"]
    top, prob = out["answers"][0]
    assert isinstance(top, str) and top and 0 < prob <= 1 and len(out["answers"]) == 3
    assert len(list((notebook / "runs").glob("_tiny-qa_*/ckpt_violet_tiny-qa_best.pt"))) == 1  # relative to cwd
