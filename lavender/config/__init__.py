"""Run configuration: every key declared once (keys.py); loading, validation, --help and docs/config.md
follow from the declarations."""
from ..errors import ConfigError
from .checks import validate
from .keys import KEYS, SECTIONS, Key
from .loading import (Config, apply_checkpoint_args, default_config, for_task, load_config, read_json, save_config,
                      unknown_key)
from .reference import help_text, markdown
from .tables import (CKPT_ARGS, CKPT_ARGS_EVAL, CLI_ONLY, DECLARED, DEFAULTS, FAMILY_KEYS, NO_EFFECT, NOT_BUILT,
                     PATH_KEYS, RESUME_FREE_KEYS, RUN_KEYS, TASK_KEYS, choices_of, from_checkpoint_keys)

__all__ = ["ConfigError", "Config", "Key", "KEYS", "SECTIONS", "DECLARED", "DEFAULTS", "NO_EFFECT", "NOT_BUILT",
           "TASK_KEYS", "FAMILY_KEYS", "RUN_KEYS", "RESUME_FREE_KEYS", "PATH_KEYS", "CLI_ONLY", "CKPT_ARGS",
           "CKPT_ARGS_EVAL",
           "load_config", "validate", "for_task", "save_config", "apply_checkpoint_args", "default_config",
           "read_json", "unknown_key", "help_text", "markdown", "choices_of", "from_checkpoint_keys"]
