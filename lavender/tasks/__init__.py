"""Task families, one module each, registered by `@register` (registry.py); `base.Task` holds the defaults
of the engine's protocol and the helpers families share."""
from .registry import build_task, check_task_keys, families, family_class, register, task_class

__all__ = ["register", "families", "family_class", "task_class", "build_task", "check_task_keys"]
