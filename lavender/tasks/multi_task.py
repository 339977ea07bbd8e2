"""Multi-task training (SPEC §5.8, `main_multi_task_mlm.py`): one model, every task of `datasets` at once.

Each entry of the config's `datasets` is a task of a known family (`type`: retrieval, qaoe, qamc,
captioning) whose keys override the global ones (keys given on the command line override the
entries). With `head: mlm` all tasks share the MLM head (LAVENDER); with `head: task_specific` each
task gets its original baseline head on the shared backbone (`main_multi_task_multi_head.py`:
`fc` for retrieval and true/false MC such as LSMDC-MC, `fc_{type}_{task}` for the others; captioning
keeps the MLM head).

Each training step serves one task, drawn uniformly (the original) or in proportion to the tasks'
train sizes (`task_sampling`); an epoch has as many steps as all tasks have batches. After each
epoch every task's val/test is evaluated; `log.json` holds `{task}_{metric}_{vl|ts}` and `mean`
(the mean of the tasks' main metrics / main_scale: accuracy, R@1 / 100, CIDEr), which picks `*_best.pt`; `best.json` records
the best epoch of every task.
"""
import dataclasses
import logging
import os

from ..config import TASK_KEYS, for_task
from ..errors import ConfigError
from ..engine.loader import MetaLoader
from .base import Task
from .qa_mc import mc_mode

log = logging.getLogger("lavender")

MEMBER_FAMILIES = ("retrieval", "qaoe", "qamc", "captioning")


def baseline_head_name(family, cfg):
    """The original multi-head baseline's head of a task (SPEC §2.9): the scalar per-pair head `fc` is
    shared by retrieval and true/false multiple choice (LSMDC-MC); the others get `fc_{type}_{task}`."""
    if family == "retrieval" or (family == "qamc" and mc_mode(cfg) == "truefalse"):
        return "fc"
    return f"fc_{family}_{cfg.task}".replace("-", "_")


class MultiTask(Task):
    """Several tasks behind the one Task contract: the engine never knows how many it runs."""

    main_metric = "mean"
    reads = tuple(TASK_KEYS)  # checked per member (entries) and over the members (global keys) below

    def __init__(self, cfg, tokenizer, build_data=True):
        from . import check_task_keys, task_class
        entries = cfg.datasets
        if not isinstance(entries, list) or not entries or not all(isinstance(e, dict) for e in entries):
            raise ConfigError(f"{cfg.config}: a multi-task config needs 'datasets': a list of task entries")
        self.members = {}
        for i, entry in enumerate(entries):
            where = f"{cfg.config}: datasets[{i}]"
            family, name = entry.get("type"), entry.get("task")
            if family not in MEMBER_FAMILIES or not name:
                raise ConfigError(f"{where}: needs 'type' (one of {', '.join(MEMBER_FAMILIES)}) and 'task'")
            if name in self.members:
                raise ConfigError(f"{where}: task {name!r} appears twice")
            try:
                sub = for_task(cfg, entry)
                sub.type = family
                if family == "captioning":
                    sub.head = "mlm"  # the original's multi-head model keeps MLM captioning
                cls = task_class(family, sub)
                check_task_keys(entry, cls.reads, f"{family} ({cls.__name__})")
                member = cls(sub, tokenizer, build_data)
            except ConfigError as e:
                raise ConfigError(f"datasets[{i}] ({name}): {e}") from None
            if cfg.head == "task_specific":
                member.head_name = baseline_head_name(family, sub)
            self.members[name] = member
        check_task_keys(cfg, {k for m in self.members.values() for k in m.reads}, "none of its tasks",
                        f"{cfg.config}: ")
        super().__init__(cfg, tokenizer, build_data=False)

    # ------------------------------------------------------------------ contract
    def heads(self):
        heads = {}
        for name, m in self.members.items():
            for h, k in m.heads().items():
                if heads.get(h, k) != k:
                    raise ConfigError(f"task {name!r} needs head {h} with {k} outputs, another task {heads[h]}")
                heads[h] = k
        return heads

    def tracked_metrics(self):
        return {"": self.main_metric, **{n: f"{n}_{m.main_metric}" for n, m in self.members.items()}}

    def eval_splits(self):
        have = {s for m in self.members.values() for s in m.eval_splits()}
        return [s for s in self.cfg.eval_splits if s in have]

    def loader(self, split, dist, device):
        if split != "train":
            raise ValueError("multi-task evaluation runs per task (MultiTask.evaluate)")
        loaders = {n: m.loader("train", dist, device) for n, m in self.members.items()}
        return MetaLoader(loaders, self.cfg.task_sampling, self.cfg.seed)

    def train_step(self, model, batch):
        name = batch["task"]
        loss, stats = self.members[name].train_step(model, batch)
        return loss, {f"{name}_ls": loss.detach(), **{f"{name}_{k}": v for k, v in stats.items()}}

    def evaluate(self, split, ctx):
        """Every task that has `split`, each writing its files into its own sub-folder of the run."""
        metrics, preds, mains = {}, {}, []
        for name, m in self.members.items():
            if split not in m.eval_splits():
                continue
            sub = dataclasses.replace(ctx, out_dir=os.path.join(ctx.out_dir, name) if ctx.out_dir else None)
            if sub.out_dir and ctx.dist.main:
                os.makedirs(sub.out_dir, exist_ok=True)
            mm, pp = m.evaluate(split, sub)
            metrics.update({f"{name}_{k}": v for k, v in mm.items()})
            if pp is not None:
                preds[name] = pp
            if m.main_metric in mm:
                mains.append(mm[m.main_metric] / m.main_scale)
        metrics["mean"] = sum(mains) / len(mains) if mains else float("nan")
        return metrics, preds or None

    def stores(self):
        return [s for m in self.members.values() for s in m.stores()]
