"""The package's dependency rules, read from its imports (function-level imports included): every import
points down the layers below, or stays inside its own package; no module imports itself back in a circle."""
import ast
import os

from lavender.paths import REPO_ROOT

# bottom to top; a module may import from its own package and from the layers below it
LAYERS = [("errors",), ("fileio", "paths"), ("config",), ("tokenizer", "metrics", "data"), ("models",), ("engine",),
          ("tasks",), ("inference", "preflight"), ("run",)]
LAYER = {name: i for i, names in enumerate(LAYERS) for name in names}
PKG = os.path.join(REPO_ROOT, "lavender")


def _modules():
    for d, _, files in os.walk(PKG):
        for f in files:
            if f.endswith(".py"):
                rel = os.path.relpath(os.path.join(d, f), REPO_ROOT)[:-3].replace(os.sep, ".")
                yield (rel[: -len(".__init__")] if rel.endswith(".__init__") else rel), os.path.join(d, f)


def _imports(module, path):
    """The lavender modules `module` imports (the most specific existing one for `from X import name`)."""
    is_pkg = path.endswith("__init__.py")
    known = dict(_modules())
    for node in ast.walk(ast.parse(open(path, encoding="utf-8").read())):
        if isinstance(node, ast.Import):
            names = [a.name for a in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                parts = module.split(".")[: len(module.split(".")) - node.level + (1 if is_pkg else 0)]
                base = ".".join(parts + ([base] if base else []))
            names = [f"{base}.{a.name}" if f"{base}.{a.name}" in known else base for a in node.names]
        else:
            continue
        yield from (n for n in names if n == "lavender" or n.startswith("lavender."))


def _graph():
    return {m: sorted(set(_imports(m, p)) - {m}) for m, p in _modules()}


def _part(module):
    parts = module.split(".")
    return parts[1] if len(parts) > 1 else None


def test_no_import_runs_back_up_a_layer():
    up = []
    for src, targets in _graph().items():
        s = _part(src)
        for dst in targets:
            d = _part(dst)
            if s is None or d == s:  # the package's __init__ (the public API) and imports within a package
                continue
            assert s in LAYER and d in LAYER, f"{src} -> {dst}: put {s if s not in LAYER else d} into LAYERS"
            if LAYER[d] >= LAYER[s]:
                up.append(f"{src} -> {dst}")
    assert not up, up


def test_no_import_cycle():
    graph = _graph()
    state, stack, cycles = {}, [], []

    def visit(m):
        state[m] = "open"
        stack.append(m)
        for n in graph.get(m, []):
            if n not in graph:
                continue
            if state.get(n) == "open":
                cycles.append(stack[stack.index(n):] + [n])
            elif n not in state:
                visit(n)
        stack.pop()
        state[m] = "done"
    for m in graph:
        if m not in state:
            visit(m)
    assert not cycles, cycles


def test_files_stay_small():
    big = [(m, n) for m, p in _modules() if (n := len(open(p).read().splitlines())) > 350
           and m not in ("lavender.models.lavender", "lavender.models.video_swin")]  # the two model definitions
    assert not big, big
