"""Task families and the one place that decides which class a config runs.

A family is what a config's `type` names (qaoe, qamc, retrieval, pretrain, captioning, multi-task);
within a family, `head` (mlm / task_specific) and for qamc `mc_mode` pick the class.
"""
from ..config import DEFAULTS, TASK_KEYS
from ..errors import ConfigError

FAMILIES = ("qaoe", "qamc", "retrieval", "pretrain", "captioning", "multi-task")


def task_class(family, cfg):
    """The Task class for `family` under `cfg` (imports only the family it needs)."""
    ts = cfg.head == "task_specific"
    if family == "qaoe":
        from .qa_oe import QAOpenEnded, QAOpenEndedTS
        return QAOpenEndedTS if ts else QAOpenEnded
    if family == "qamc":
        from .qa_mc import task_class as mc_class
        return mc_class(cfg)
    if family == "retrieval":
        from .retrieval import Retrieval, RetrievalTS
        return RetrievalTS if ts else Retrieval
    if family == "pretrain":
        from .pretrain import Pretrain
        return Pretrain
    if family == "multi-task":
        from .multi_task import MultiTask
        return MultiTask
    if family == "captioning":
        if ts:
            raise ConfigError("captioning has only the MLM head (the original has no task-specific captioner); "
                              "use head mlm")
        from .caption import Captioning
        return Captioning
    raise ConfigError(f"unknown task type {family!r}; known: {', '.join(FAMILIES)}")


def check_task_keys(values, reads, who, where=""):
    """Refuse a non-default value of a TASK_KEYS key (in the dict `values`) that no class in `who`
    reads (`reads`: the union of their `Task.reads`)."""
    for key, applies in TASK_KEYS.items():
        if key in values and values[key] != DEFAULTS[key] and key not in reads:
            raise ConfigError(f"{where}{key} {values[key]!r} applies to {applies}; {who} does not read it "
                              f"(leave it at {DEFAULTS[key]!r})")


def build_task(family, cfg, tokenizer, **kw):
    """The task object for `family` (see `task_class`); keys it would ignore are refused first."""
    cls = task_class(family, cfg)
    check_task_keys(cfg, cls.reads, f"{family} ({cls.__name__})")
    return cls(cfg, tokenizer, **kw)
