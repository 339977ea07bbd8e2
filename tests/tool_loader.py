"""The scripts of `_tools/` as modules, for tests that call their functions."""
import sys

from lavender.paths import REPO_ROOT

TOOLS = f"{REPO_ROOT}/_tools"
if TOOLS not in sys.path:
    sys.path.append(TOOLS)  # as the tools do, so that their shared module imports by name

import worker_pool  # noqa: E402


def load_tool(name):
    """`_tools/<name>.py` loaded afresh as module `_tool_<name>` (its `main` not run), with the tools' own
    loader: registered in sys.modules, since the tools' worker pools pickle its functions by module name."""
    mod_name = "_tool_" + name.replace("-", "_")
    sys.modules.pop(mod_name, None)  # afresh: no module state carried over from another test
    return worker_pool.load_module(mod_name, f"{TOOLS}/{name}.py")
