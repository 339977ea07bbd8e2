"""Task families register themselves: `@register("name")` on the family's `Task` subclass. The families of
this package are found by importing its modules; a family defined elsewhere (a test, a user's module)
registers when its module is imported. A config's `type` names the family; the family's `variant(cfg)`
picks the class within it."""
import importlib
import logging
import pkgutil

from ..config import DEFAULTS, FAMILY_KEYS, TASK_KEYS
from ..errors import ConfigError

__all__ = ["register", "families", "family_class", "task_class", "build_task", "check_task_keys", "warn_unread_keys"]

log = logging.getLogger("lavender")

_FAMILIES = {}
_loaded = False


def register(name):
    """Class decorator: make a Task subclass the family `name`."""
    def deco(cls):
        old = _FAMILIES.get(name)
        if old is not None and old.__qualname__ != cls.__qualname__:
            raise ValueError(f"task family {name!r} is registered twice ({old.__module__} and {cls.__module__})")
        cls.family = name
        _FAMILIES[name] = cls
        return cls
    return deco


def _load_package_families():
    global _loaded
    if not _loaded:
        for m in pkgutil.iter_modules(importlib.import_module(__package__).__path__):
            importlib.import_module(f"{__package__}.{m.name}")
        _loaded = True


def families():
    """{name: family class} of every registered family."""
    _load_package_families()
    return dict(_FAMILIES)


def family_class(name):
    fams = families()
    if name not in fams:
        raise ConfigError(f"unknown task type {name!r}; known: {', '.join(fams)}")
    return fams[name]


def task_class(family, cfg):
    """The Task class a config of `family` runs."""
    return family_class(family).variant(cfg)


def check_task_keys(values, reads, who, where=""):
    """Refuse a non-default value of a task_key config key (in the dict `values`) that no class in `who`
    reads (`reads`: the union of their `Task.reads`)."""
    for key, applies in TASK_KEYS.items():
        if key in values and values[key] != DEFAULTS[key] and key not in reads:
            raise ConfigError(f"{where}{key} {values[key]!r} applies to {applies}; {who} does not read it "
                              f"(leave it at {DEFAULTS[key]!r})")


def warn_unread_keys(values, reads, who, where=""):
    """One warning per family_key config key set to a non-default value in `values` that no class in `who`
    reads (`reads`: the union of their `Task.reads`): the original's configs set such keys where they do
    nothing (e.g. size_vocab under the MLM head)."""
    for key, applies in FAMILY_KEYS.items():
        if key in values and values[key] != DEFAULTS[key] and key not in reads:
            log.warning("%s%s = %r has no effect for %s: it applies to %s", where, key, values[key], who, applies)


def build_task(family, cfg, tokenizer, **kw):
    """The task object for `family` under `cfg`; keys it would ignore are refused first, or warned about."""
    cls = task_class(family, cfg)
    check_task_keys(cfg, cls.reads, f"{family} ({cls.__name__})")
    warn_unread_keys(cfg, cls.reads, f"{family} ({cls.__name__})")
    return cls(cfg, tokenizer, **kw)
