"""Documentation lives in the repository: every docs page and anchor cited in the code, the tools, the tests and
the docs exists; nothing cites a document outside the repository; docs/config.md is the one the key declarations
make; --help describes every key; the README stays a front page."""
import os
import re
import subprocess
import sys

from lavender.config import KEYS, help_text, markdown
from lavender.paths import REPO_ROOT

CITE = re.compile(r"docs/([\w.-]+\.md)(?:#([\w-]+))?")


def _slug(heading):
    """GitHub's anchor of a Markdown heading."""
    text = re.sub(r"[`*_]", lambda m: "_" if m.group() == "_" else "", heading.strip().lower())
    return re.sub(r"[^\w\- ]", "", text).replace(" ", "-")


def _anchors(path):
    with open(path, encoding="utf-8") as f:
        return {_slug(m.group(1)) for m in re.finditer(r"^#+\s+(.*)$", f.read(), re.M)}


def _sources():
    for top in ("lavender", "_tools", "tests", "docs"):
        for d, _, files in os.walk(os.path.join(REPO_ROOT, top)):
            yield from (os.path.join(d, f) for f in files if f.endswith((".py", ".md", ".sh")))
    yield from (os.path.join(REPO_ROOT, f) for f in os.listdir(REPO_ROOT) if f.endswith((".py", ".md")))


def test_every_docs_citation_exists():
    anchors, missing = {}, []
    for path in _sources():
        text = open(path, encoding="utf-8").read()
        for m in CITE.finditer(text):
            page = os.path.join(REPO_ROOT, "docs", m.group(1))
            if not os.path.isfile(page):
                missing.append(f"{os.path.relpath(path, REPO_ROOT)}: docs/{m.group(1)}")
                continue
            if m.group(2) and m.group(2) not in anchors.setdefault(page, _anchors(page)):
                missing.append(f"{os.path.relpath(path, REPO_ROOT)}: docs/{m.group(1)}#{m.group(2)}")
    assert not missing, missing


def test_nothing_cites_documents_outside_the_repository():
    outside = re.compile(r"\bSPEC ?(§|\d)|\bLESSONS ?#|\.\./shared")
    found = [os.path.relpath(p, REPO_ROOT) for p in _sources() if outside.search(open(p, encoding="utf-8").read())]
    assert not found, found


def test_config_reference_is_up_to_date():
    with open(os.path.join(REPO_ROOT, "docs", "config.md"), encoding="utf-8") as f:
        assert f.read() == markdown() + "\n", "regenerate it: python -m lavender.config > docs/config.md"
    text = help_text()
    for k in KEYS:
        assert f"--{k.name} ({k.type.name}, default" in text and k.doc in text, k.name


def test_help_lists_every_key_with_its_description():
    out = subprocess.run([sys.executable, os.path.join(REPO_ROOT, "main_qaoe_mlm.py"), "--help"], capture_output=True,
                         text=True, cwd=REPO_ROOT, timeout=120)
    assert out.returncode == 0 and "peak learning rate of AdamW" in out.stdout and "--max_steps (int, default 0)" \
        in out.stdout


def test_readme_is_a_front_page():
    with open(os.path.join(REPO_ROOT, "README.md"), encoding="utf-8") as f:
        assert len(f.read().splitlines()) <= 250
