"""The tables of keys that code elsewhere needs, all derived from the declarations in keys.py."""
from .keys import KEYS

DECLARED = {k.name: k for k in KEYS}
if len(DECLARED) != len(KEYS):
    raise RuntimeError("a config key is declared twice in lavender/config/keys.py")

DEFAULTS = {k.name: k.default for k in KEYS}
# accepted for compatibility and without effect: key -> why
NO_EFFECT = {k.name: k.no_effect for k in KEYS if k.no_effect}
# features not built: key -> (the one value accepted, why)
NOT_BUILT = {k.name: (k.default, k.not_built) for k in KEYS if k.not_built}
# read by some task families only: key -> what it applies to
TASK_KEYS = {k.name: k.task_key for k in KEYS if k.task_key}
# read by some task families only, accepted by the others with a warning: key -> what it applies to
FAMILY_KEYS = {k.name: k.family_key for k in KEYS if k.family_key}
# the whole run / the one shared model: refused inside a multi-task entry
RUN_KEYS = frozenset(k.name for k in KEYS if k.scope == "run")
# may differ when a run is resumed ("config": the file a run was started from)
RESUME_FREE_KEYS = frozenset({k.name for k in KEYS if k.resume} | {"config"})
PATH_KEYS = tuple(k.name for k in KEYS if k.path)
CLI_ONLY = frozenset(k.name for k in KEYS if k.cli_only)
# taken from the args.json beside path_ckpt (the original's update_args): always / for evaluation-only runs
CKPT_ARGS = tuple(k.name for k in KEYS if k.from_ckpt == "model")
CKPT_ARGS_EVAL = tuple(k.name for k in KEYS if k.from_ckpt == "eval")


def from_checkpoint_keys(eval_only):
    return CKPT_ARGS + (CKPT_ARGS_EVAL if eval_only else ())


def choices_of(key):
    """The declared choices of a key (its list items' choices for a list key)."""
    t = DECLARED[key].type
    for attr in ("inner", "item"):
        t = getattr(t, attr, t)
    return t.choices
