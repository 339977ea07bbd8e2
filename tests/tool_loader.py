"""The scripts of `_tools/` as modules, for tests that call their functions."""
import importlib.util
import sys

from lavender.paths import REPO_ROOT

TOOLS = f"{REPO_ROOT}/_tools"


def load_tool(name):
    """`_tools/<name>.py` loaded afresh as module `_tool_<name>` (its `main` not run). It is registered in
    sys.modules because the tools' worker pools pickle its functions by module name."""
    mod_name = "_tool_" + name.replace("-", "_")
    spec = importlib.util.spec_from_file_location(mod_name, f"{TOOLS}/{name}.py")
    mod = importlib.util.module_from_spec(spec)
    sys.modules[mod_name] = mod
    spec.loader.exec_module(mod)
    return mod
