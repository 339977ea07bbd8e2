"""Task families and the one place that decides which class a config runs.

A family is what a config's `type` names (qaoe, qamc, retrieval, pretrain, captioning, multi-task);
within a family, `head` (mlm / task_specific) and for qamc `mc_mode` pick the class.
"""
from ..config import ConfigError

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


def build_task(family, cfg, tokenizer, **kw):
    """The task object for `family` (see `task_class`)."""
    return task_class(family, cfg)(cfg, tokenizer, **kw)
