"""`Task`: the defaults of the engine's protocol (lavender.engine.protocol.TaskProtocol) and what most
families share: datasets over (video, annotation item) pairs from `{data_dir}/img_{dataset}.tsv` and
`txt_{task}.json`.

A family is one module of this package: a `Task` subclass registered with `@register("name")`
(lavender.tasks.registry). It usually writes four things: `encode` (item -> token ids + labels),
`train_step`, `eval_step` and `summarize`; a family whose evaluation is not a loop over batches
(retrieval's all-pairs scoring, captioning's decoding) overrides `evaluate`. Within a family, `variant`
picks the class a config runs (e.g. the task-specific baseline head), never branches inside a class.
Families that answer in `lavender.inference.Predictor` implement `predict`.
"""
import logging
import os

from ..data.annotations import load_annotation_file, load_annotations
from ..data.collate import collate_dicts
from ..data.video_folder import open_store, store_inputs
from ..engine.loader import EpochLoader
from ..errors import ConfigError, DataError
from ..paths import Input
from ..tokenizer import special_ids
from .items import ItemDataset, field_problem, subsample_videos
from .modeling import ModelHelpers
from .text import TextHelpers

log = logging.getLogger("lavender")


class Task(TextHelpers, ModelHelpers):
    """Base class of every family (see module doc)."""

    family = None             # the registered family name (set by @register)
    multi_task_member = True  # may be a task of a multi-task run
    has_baseline_head = True  # has a task-specific baseline head (head task_specific)
    pair_head = False         # its baseline head scores (video, text) pairs: the multi-head model's shared `fc`
    predicts = ""             # what `predict` returns, in words ("" : this family does not predict)
    main_metric = "ac"        # the metric of `summarize` whose val value picks the best checkpoint
    main_scale = 1.0          # multi-task averages main_metric / main_scale (accuracy-like: 0-1)
    eval_start = False        # evaluate epoch 0 (the starting weights) without path_ckpt too
    prompt_name = "vtm"       # key of PROMPTS (enable_prompt)
    task_token = "vtm"        # row of the model's task-token table (enable_task_token)
    head_name = "fc"          # task-specific baselines: the model's MLP head they use
    reads = ("data_ratio",)   # the task_key / family_key config keys (lavender.config) this class honours
    required_fields = ()      # annotation fields every item of this family needs (besides "video")
    field_kinds = {}          # {field: kind of lavender.tasks.items.FIELD_KINDS}, checked at start-up

    def __init__(self, cfg, tokenizer, build_data=True):
        self.cfg, self.tok = cfg, tokenizer
        self.ids = special_ids(tokenizer)
        self.datasets, self.store = {}, None
        self.counts = None  # {split: {name: n}}: items cut or without a label (data_report)
        if build_data:
            self.build_datasets()

    @classmethod
    def variant(cls, cfg):
        """The class of this family that `cfg` runs (e.g. the baseline head for `head: task_specific`)."""
        if cfg.head == "task_specific":
            raise ConfigError(f"{cls.family} has only the MLM head; use head mlm")
        return cls

    # ------------------------------------------------------------------ data
    @staticmethod
    def annotation_file(cfg):
        return os.path.join(cfg.data_dir, f"txt_{cfg.task}.json")

    def annotation_path(self):
        return self.annotation_file(self.cfg)

    @classmethod
    def required_inputs(cls, cfg):
        """The data files a run of `cfg` reads (lavender.paths.Input), checked all at once before any work."""
        return store_inputs(cfg.data_dir, cfg.dataset, cfg.video_dir) + [
            Input("annotations", cls.annotation_file(cfg), "annotations")]

    def make_store(self):
        c = self.cfg
        return open_store(c.data_dir, c.dataset, c.size_frame, c.size_img, c.img_transform, c.frame_column,
                          c.skip_bad, video_dir=c.video_dir, video_sample=c.video_sample, video_cache=c.video_cache)

    def build_datasets(self):
        c = self.cfg
        self.store = self.make_store()
        path = self.annotation_path()
        self.annotations = load_annotation_file(path)
        for split in self.data_splits(path):
            items = self.prepare_items(load_annotations(path, split, self.store, c.skip_bad), split)
            if c.data_ratio != 1.0 and split == "train":
                items = subsample_videos(items, c.data_ratio, c.seed)
            self.check_items(items, path, split)
            self.datasets[split] = ItemDataset(items, self.store, self.encode, split == "train", c.seed)

    def data_splits(self, path):
        """The splits to build: train (when training) and the eval splits the annotation file has. A
        missing val split, or any missing split the user asked for by name (eval_splits), is an error."""
        c = self.cfg
        have = [s for s in c.eval_splits if s in self.annotations]
        absent = [s for s in c.eval_splits if s not in self.annotations]
        required = absent if "eval_splits" in c.user_keys else [s for s in absent if s == "val"]
        if required:
            raise DataError(f"{path} has no split {required[0]!r} to evaluate (splits present: "
                            f"{[k for k in self.annotations if k != 'ans2label']}); set eval_splits to the ones it has")
        for s in absent:
            log.info("%s has no %r split: not evaluated", path, s)
        return (["train"] if c.size_epoch > 0 else []) + have

    def missing_fields(self, item):
        """The fields `item` lacks for this task (empty: usable)."""
        return [f for f in self.required_fields if f not in item]

    def check_items(self, items, path, split):
        """At start-up, not mid-epoch: an empty split or an item without its fields is a DataError."""
        if not items:
            ratio = " (after data_ratio)" if split == "train" and self.cfg.data_ratio != 1.0 else ""
            raise DataError(f"{path}[{split!r}] has no items{ratio}: nothing to "
                            f"{'train on' if split == 'train' else 'evaluate'}")
        bad = [(i, m) for i, m in ((i, self.missing_fields(it)) for i, it in enumerate(items)) if m]
        if bad:
            i, missing = bad[0]
            raise DataError(f"{path}[{split!r}] item {i} (video {items[i].get('video')!r}) lacks {missing} "
                            f"({len(bad)} item(s) in all); a {type(self).__name__} item needs "
                            f"{['video', *self.required_fields]}")
        bad = [(i, p) for i, p in ((i, self.item_problem(it)) for i, it in enumerate(items)) if p]
        if bad:
            i, problem = bad[0]
            raise DataError(f"{path}[{split!r}] item {i} (video {items[i].get('video')!r}): {problem} "
                            f"({len(bad)} item(s) in all)")

    def item_problem(self, item):
        """Why a (complete) item cannot be used, or None: its fields' kinds (`field_kinds`)."""
        return next((p for p in (field_problem(item, f, k) for f, k in self.field_kinds.items()) if p), None)

    def texts_to_fit(self, item):
        """[(text, tokens it may have)] of an item's texts that size_txt cuts when longer (counted)."""
        return []

    def count_items(self, split, items):
        """{name: n} for a split, reported in the log and log.json (data_report): `n_truncated`, the items
        whose text size_txt cuts."""
        pairs = [(i, t, n) for i, it in enumerate(items) for t, n in self.texts_to_fit(it)]
        if not pairs:
            return {}
        ids = self.token_ids([t for _, t, _ in pairs])
        return {"n_truncated": len({i for (i, _, n), t in zip(pairs, ids) if len(t) > n})}

    invalid_reason = "their answer is not one vocabulary token"

    def data_report(self):
        """{split: {name: n}}: what each split loses before training (`count_items`: cut texts, items without
        a label), counted once, and logged when there are any (the engine adds it to log.json)."""
        if self.counts is None:
            self.counts, path = {}, self.annotation_path()
            for split, ds in self.datasets.items():
                self.counts[split] = counts = self.count_items(split, getattr(ds, "items", []))
                if counts.get("n_truncated"):
                    log.warning("%s[%r]: %d of %d item(s) have a text longer than size_txt %d allows: cut "
                                "(n_truncated)", path, split, counts["n_truncated"], len(ds), self.cfg.size_txt)
                if counts.get("n_invalid"):
                    log.warning("%s[%r]: %d of %d item(s) have no label (%s): they count as wrong in evaluation "
                                "and add nothing to training (n_invalid)", path, split, counts["n_invalid"],
                                len(ds), self.invalid_reason)
        return self.counts

    def prepare_items(self, items, split):
        """Hook: filter or expand a split's items (e.g. one caption per video)."""
        return items

    def encode(self, item, train, rng):
        """Token ids, mask and labels of one annotation item (tensors)."""
        raise NotImplementedError

    def make_loader(self, dataset, batch_size, dist, device, train=False, segments=None):
        """An EpochLoader over `dataset` for this process: shuffled per epoch and padded to equal steps per
        rank for training, each example once for evaluation."""
        c = self.cfg
        return EpochLoader(dataset, self.collate, batch_size, dist, shuffle=train, seed=c.seed, segments=segments,
                           workers=c.n_workers, pin_memory=device.type == "cuda")

    def collate(self, batch):
        return collate_dicts(batch)

    # ------------------------------------------------------------------ the engine's protocol
    def heads(self):
        """The model heads this task needs: {name: outputs}, None for the MLM head `fc_mtm`."""
        return {"fc_mtm": None}

    def tracked_metrics(self):
        """{label: metric}: val metrics whose best epoch is recorded ("" = the run's main metric,
        whose best epoch's weights are copied to `*_best.pt`)."""
        return {"": self.main_metric}

    def eval_splits(self):
        """The splits evaluated after each epoch (those of `cfg.eval_splits` that this task has)."""
        return [s for s in self.cfg.eval_splits if s in self.datasets]

    def segments(self, split):
        """Consecutive index ranges the sampler must keep apart within a batch (None: one range)."""
        return None

    def loader(self, split, dist, device):
        """The batches of `split` for this process."""
        c, train = self.cfg, split == "train"
        bs = c.size_batch if train or not c.size_batch_eval else c.size_batch_eval
        return self.make_loader(self.datasets[split], bs, dist, device, train, self.segments(split))

    def train_step(self, model, batch, step=None):
        """(loss, {stat: float or 0-d tensor}) of one training batch; `step`: its StepContext."""
        raise NotImplementedError

    def eval_step(self, model, batch):
        """{name: per-example array} of one evaluation batch (with "index" to merge across ranks)."""
        raise NotImplementedError

    def summarize(self, records, split):
        """Metrics {name: number} of a split from the merged records of `eval_step`."""
        raise NotImplementedError

    def predictions(self, records, split):
        """Per-example predictions to write to `predictions_{split}.json` (None: none)."""
        return None

    def evaluate(self, split, ctx):
        """(metrics, predictions) of one split. `ctx` (`lavender.engine.evaluation.EvalContext`) holds
        the model, the process group, the precision, the run folder and the epoch."""
        records = ctx.records(self.eval_step, self.loader(split, ctx.dist, ctx.device), desc=f"eval {split}")
        return self.summarize(records, split), self.predictions(records, split)

    def stores(self):
        """The frame stores whose skipped videos (skip_bad) are reported at the end of a run."""
        return [self.store] if self.store is not None else []

    # ------------------------------------------------------------------ prediction (lavender.inference)
    @classmethod
    def predict_family(cls, cfg, member=None):
        """The family whose phrasing a checkpoint of this family answers in by default."""
        return cls.family

    @classmethod
    def task_view(cls, cfg, family, member=None):
        """(config, note, head name or None) that a `family` task runs under for a checkpoint of this family."""
        if member:
            raise ConfigError(f"--member applies to multi-task checkpoints; {cfg.config} is a {cfg.type} run")
        return cfg.copy(), None, None

    def predict(self, model, batches, **query):
        """Per video, this family's answer to `query` (e.g. question=...) for `batches` of (indices, clips)."""
        raise NotImplementedError(f"{self.family} does not predict")
