"""Multi-task training (docs/original.md#multi-task-training, `main_multi_task_mlm.py`): one model, every task
of `datasets` at once.

Each entry of the config's `datasets` is a task of a registered family that may be a member (`type`:
retrieval, qaoe, qamc, captioning, ...) whose keys override the global ones (keys given on the command line override the
entries). With `head: mlm` all tasks share the MLM head (LAVENDER); with `head: task_specific` each
task gets its original baseline head on the shared backbone (`main_multi_task_multi_head.py`:
`fc` for the families that score pairs, retrieval and true/false MC such as LSMDC-MC; `fc_{type}_{task}` for
the others; a family without a baseline head, captioning, keeps the MLM head).

Each training step serves one task, drawn uniformly (the original), in proportion to the tasks' train
sizes, or to the sizes to the power 1 / `task_temperature` (`task_sampling`); an epoch has as many steps
as all tasks have batches. A task's `loss_weight` scales its loss (docs/tasks.md#multi-task). After each
epoch every task's val/test is evaluated; `log.json` holds `{task}_{metric}_{vl|ts}` and `mean` (the mean
of the tasks' main metrics / main_scale: accuracy, R@1 / 100, CIDEr), which picks `*_best.pt`; `best.json`
records the best epoch of every task.
"""
import dataclasses
import logging
import os

from ..config import FAMILY_KEYS, TASK_KEYS, for_task
from ..engine.loader import MetaLoader
from ..engine.protocol import TARGETS
from ..errors import ConfigError
from .base import Task
from .registry import check_task_keys, families, register, task_class, warn_unread_keys

log = logging.getLogger("lavender")


def member_families():
    """The registered families that may be tasks of a multi-task run."""
    return [n for n, cls in families().items() if cls.multi_task_member]


def baseline_head_name(cls, cfg):
    """The original multi-head baseline's head of a member task of class `cls`
    (docs/original.md#task-specific-baseline-heads): the scalar per-pair head `fc` is shared by the classes that
    score (video, text) pairs (retrieval, true/false MC such as LSMDC-MC); the others get `fc_{type}_{task}`."""
    return "fc" if cls.pair_head else f"fc_{cls.family}_{cfg.task}".replace("-", "_")


@register("multi-task")
class MultiTask(Task):
    """Several tasks behind the one protocol: the engine never knows how many it runs."""

    multi_task_member = False
    main_metric = "mean"
    eval_start = True  # the original evaluates every task at step 0
    reads = tuple(TASK_KEYS) + tuple(FAMILY_KEYS)  # checked per member (entries), over the members (global) below
    reads_itself = ("loss_weight", "task_sampling", "task_temperature")  # task keys it applies, not its members

    @classmethod
    def variant(cls, cfg):
        return cls  # head task_specific: each member its baseline head (the multi-head model)

    def __init__(self, cfg, tokenizer, build_data=True):
        entries = cfg.datasets
        allowed = member_families()
        if not isinstance(entries, list) or not entries or not all(isinstance(e, dict) for e in entries):
            raise ConfigError(f"{cfg.config}: a multi-task config needs 'datasets': a list of task entries")
        self.members = {}
        for i, entry in enumerate(entries):
            where = f"{cfg.config}: datasets[{i}]"
            family, name = entry.get("type"), entry.get("task")
            if family not in allowed or not name:
                raise ConfigError(f"{where}: needs 'type' (one of {', '.join(allowed)}) and 'task'")
            if name in self.members:
                raise ConfigError(f"{where}: task {name!r} appears twice")
            try:
                sub = for_task(cfg, entry)
                sub.type = family
                if not families()[family].has_baseline_head:
                    sub.head = "mlm"  # the original's multi-head model keeps MLM captioning
                cls = task_class(family, sub)
                check_task_keys(entry, cls.reads + self.reads_itself, f"{family} ({cls.__name__})")
                warn_unread_keys(entry, cls.reads, f"{family} ({cls.__name__})", f"{where}: ")
                member = cls(sub, tokenizer, build_data)
            except ConfigError as e:
                raise ConfigError(f"datasets[{i}] ({name}): {e}") from None
            if cfg.head == "task_specific":
                member.head_name = baseline_head_name(cls, sub)
            self.members[name] = member
        self.loss_weights = {n: float(m.cfg.loss_weight) for n, m in self.members.items()}
        read = {k for m in self.members.values() for k in m.reads} | set(self.reads_itself)
        check_task_keys(cfg, read, "none of its tasks", f"{cfg.config}: ")
        warn_unread_keys(cfg, read, "any of its tasks", f"{cfg.config}: ")
        super().__init__(cfg, tokenizer, build_data=False)

    @classmethod
    def required_inputs(cls, cfg):
        """Every member task's inputs, each once."""
        out = {}
        for entry in cfg.datasets or []:
            if isinstance(entry, dict) and entry.get("type") in member_families():
                sub = for_task(cfg, entry)
                sub.type = entry["type"]
                if not families()[sub.type].has_baseline_head:
                    sub.head = "mlm"
                for i in task_class(sub.type, sub).required_inputs(sub):
                    out.setdefault(i.path, i)
        return list(out.values())

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
        temperature = self.cfg.task_temperature if self.cfg.task_sampling == "temperature" else None
        self._meta = MetaLoader(loaders, self.cfg.task_sampling, self.cfg.seed, temperature)
        return self._meta

    def train_step(self, model, batch, step=None):
        name = batch["task"]
        if step is not None:  # the member counts its own batches
            step = dataclasses.replace(step, batches=self._meta.loaders[name].batches_served())
        loss, stats = self.members[name].train_step(model, batch, step)
        out = {f"{name}_ls": loss.detach(), **{f"{name}_{k}": v for k, v in stats.items() if k != TARGETS}}
        if TARGETS in stats:
            out[TARGETS] = stats[TARGETS]
        weight = self.loss_weights[name]  # the task's own loss is logged, the weighted one trains
        return (loss * weight if weight != 1.0 else loss), out

    def evaluate(self, split, ctx):
        """Every task that has `split`, each writing its files into its own sub-folder of the run."""
        metrics, preds, mains = {}, {}, []
        for name, m in self.members.items():
            if split not in m.eval_splits():
                continue
            sub = dataclasses.replace(ctx, out_dir=os.path.join(ctx.out_dir, name) if ctx.out_dir else None)
            if sub.out_dir and ctx.main:
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

    def data_report(self):
        out = {}
        for name, m in self.members.items():
            for split, counts in m.data_report().items():
                out.setdefault(split, {}).update({f"{name}_{k}": n for k, n in counts.items()})
        return out

    # ------------------------------------------------------------------ prediction
    @classmethod
    def predict_family(cls, cfg, member=None):
        entry = next((e for e in cfg.datasets if e.get("task") == member), cfg.datasets[0])
        return entry.get("type")

    @classmethod
    def task_view(cls, cfg, family, member=None):
        """The settings of the member named `member`, else of the first member of `family` (else the first
        member), and the baseline head that member was trained with (head task_specific)."""
        entries = cfg.datasets
        names = [e.get("task") for e in entries]
        if member:
            if member not in names:
                raise ConfigError(f"--member {member!r}: the run's tasks are {', '.join(map(str, names))}")
            entry = entries[names.index(member)]
        else:
            entry = ([e for e in entries if e.get("type") == family] or entries)[0]
        note = None
        if not member and len(entries) > 1:
            note = (f"settings of the run's task {entry.get('task')} (--member NAME picks another: "
                    f"{', '.join(names)})")
        sub = for_task(cfg, entry)
        head = baseline_head_name(task_class(family, sub), sub) if cfg.head == "task_specific" else None
        return sub, note, head
