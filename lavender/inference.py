"""Using a trained model outside training (`_tools/predict.py`, notebooks).

    from lavender.inference import Predictor
    p = Predictor.from_checkpoint("_snapshot/_demo-qa_X/ckpt_violet_demo-qa_best.pt")
    videos = [p.read_video("clip.mp4")]
    p.answer(videos, "what color is the shape?")          # [[("red", 0.93), ...]]
    p.view("retrieval").rank(videos, "a red circle moves")  # one true/false score per video

`Predictor.from_checkpoint` reads the settings the checkpoint was trained with (the `args.json` of its
run folder, or a config file), builds the model with the heads they name and loads the file strictly:
a file that does not fit those settings is an error, never a partly random model. A video file takes
the path training data took: the frame extraction and JPEG encoding of `_tools/extract_video-frame.py`
(`read_video_fields`), then the store's temporal sampling and eval transform (`ClipSampler`), so the
model sees the pixels it would see had the file been put into a frame TSV with the tools.

A `Predictor` answers in the phrasing of one task family (its view: "qaoe", "qamc", "retrieval",
"captioning"), with that family's text layout from the run's settings (for a multi-task run, those of
one member). Every family shares the MLM head, so a checkpoint of one family can be asked in another's
phrasing (e.g. a pretrained model for zero-shot QA or retrieval); `view(family)` switches.
"""
import contextlib
import os
from dataclasses import dataclass
from typing import List, Optional, Sequence

import torch

from .config import load_config
from .data.clips import ClipSampler
from .data.video_files import read_video_fields
from .data.video_folder import VideoFolderStore
from .data.video_store import VideoStore
from .engine.precision import autocast, resolve_precision
from .errors import ConfigError, DataError
from .models.factory import build_model
from .models.weights import load_weights
from .paths import resolve_bert_dir
from .tasks import build_task, families, family_class
from .tokenizer import load_tokenizer

__all__ = ["Predictor", "Video", "run_config", "load_model", "read_inputs", "predicting_families", "RUN_ARGS"]

RUN_ARGS = "args.json"  # the resolved config a run writes into its folder
LAYOUT_NAMES = {"video_swin": "Video Swin (visual backbone only)", "hf_bert": "BERT (text only)",
                "swinbert": "SwinBERT"}


def predicting_families():
    """The families a Predictor can answer in (those whose class implements `predict`)."""
    return [name for name, cls in families().items() if cls.predicts]


@dataclass
class Video:
    """One input video: a name to show and its frames as base64 JPEG fields (as a frame TSV row)."""
    name: str
    fields: List[str]
    source: str = ""


# ---------------------------------------------------------------------------- loading
def run_config(path_ckpt, config=None, overrides=()):
    """The config a checkpoint was trained with: `config` if given, else the `args.json` of its run
    folder; `overrides` are `--key value` strings as on a script's command line."""
    path_ckpt = os.fspath(path_ckpt)
    if not os.path.isfile(path_ckpt):
        raise FileNotFoundError(f"checkpoint not found: {path_ckpt}")
    if config is None:
        config = os.path.join(os.path.dirname(os.path.abspath(path_ckpt)), RUN_ARGS)
        if not os.path.isfile(config):
            raise ConfigError(f"no {RUN_ARGS} beside {path_ckpt} (a run folder has one): pass --config "
                              f"with the settings the checkpoint was trained with (e.g. _args/args_msrvtt-qa.json)")
    # as an evaluation: the frames, image size and text length come from the checkpoint's run (its args.json),
    # whatever `config` says (a warning names each difference), so the model sees inputs like its training's
    asked = any(o.split("=")[0] in ("--size_epoch", "--eval_only") for o in overrides)
    evaluate = [] if asked else ["--size_epoch", "0"]
    cfg = load_config(["--config", os.fspath(config), *overrides, *evaluate, "--path_ckpt", path_ckpt])
    if cfg.type not in families():
        raise ConfigError(f"{config}: type {cfg.type!r} is not a task family")
    return cfg


def model_heads(cfg, tokenizer):
    """The heads the run's model was built with (those of its own task family)."""
    return build_task(cfg.type, cfg, tokenizer, build_data=False).heads()


def load_model(cfg, tokenizer, device="cpu"):
    """The run's model with `cfg.path_ckpt` loaded strictly, in eval mode on `device`; returns
    (model, notes) where notes list tensors the loader adapted (e.g. resized position tables)."""
    path = cfg.path_ckpt
    model = build_model(dict(cfg, heads=model_heads(cfg, tokenizer)),
                        bert_dir=resolve_bert_dir(cfg.fusion_encoder or cfg.txt_backbone))
    # never runs code from the file (unless trust_checkpoint); a misfit is reported below, in its terms
    rep = load_weights(model, path, strict=False, trust=cfg.trust_checkpoint, log=None, warn=None)
    if rep.layout in LAYOUT_NAMES:
        raise ConfigError(f"{path} is a {LAYOUT_NAMES[rep.layout]} weights file, not a trained LAVENDER "
                          f"checkpoint (a run's ckpt_violet_*.pt)")
    if not rep.ok or not rep.loaded:
        raise ConfigError(f"{path} does not fit the settings of {cfg.config}: {_misfit(rep)}; pass --config "
                          f"with the settings it was trained with")
    return model.to(device).eval(), list(rep.adapted)


def _misfit(rep):
    """One line: what keeps a checkpoint from filling the model."""
    if not rep.loaded:
        return "none of the file's tensors belong to this model"
    parts = []
    if rep.mismatched:
        k, a, b = rep.mismatched[0]
        parts.append(f"{len(rep.mismatched)} tensor(s) of another shape (e.g. {k}: file {tuple(a)} vs "
                     f"model {tuple(b)})")
    if rep.missing:
        parts.append(f"{len(rep.missing)} model tensor(s) missing from the file (e.g. {rep.missing[0]})")
    if rep.unexpected:
        parts.append(f"{len(rep.unexpected)} file tensor(s) the model does not have (e.g. {rep.unexpected[0]})")
    return "; ".join(parts)


def training_sample_count(cfg):
    """Frames per video in the run's frame store (the tools' --sample, or `video_sample` for a run on video
    files), read from the TSV's first row; None when the store is not there."""
    if cfg.get("video_dir"):
        return cfg.video_sample or cfg.size_frame
    if not isinstance(cfg.dataset, str):
        return None
    try:
        store = VideoStore(cfg.data_dir, cfg.dataset, cfg.size_frame, cfg.size_img, cfg.img_transform,
                           frame_column=cfg.frame_column)
        ids = store.ids()
        return len(store.frame_strings(ids[0])) if ids else None
    except (DataError, OSError):
        return None


# ---------------------------------------------------------------------------- the predictor
class Predictor:
    """A trained model with its run config and tokenizer, answering in the phrasing of one family."""

    def __init__(self, run_cfg, tokenizer, model, family=None, member=None):
        run_family = family_class(run_cfg.type)
        family = family or run_family.predict_family(run_cfg, member)
        if family not in predicting_families():
            raise ConfigError(f"cannot predict in the phrasing of {family!r}; choose one of "
                              f"{', '.join(predicting_families())}")
        self.run_cfg, self.tok, self.model = run_cfg, tokenizer, model
        self.family, self.member = family, member
        self.cfg, self.note, self.head_name = run_family.task_view(run_cfg, family, member)
        self.device = next(model.parameters()).device
        self.sampler = ClipSampler(self.cfg.size_frame, self.cfg.size_img, self.cfg.img_transform)
        self.notes = []
        self._sample = None

    @classmethod
    def from_checkpoint(cls, path_ckpt, config=None, overrides=(), device="cpu", family=None, member=None):
        """Load a checkpoint with its run's settings (see module doc); `device` e.g. "cpu", "cuda"."""
        cfg = run_config(path_ckpt, config, overrides)
        tok = load_tokenizer(cfg.tokenizer)
        model, notes = load_model(cfg, tok, torch.device(device))
        p = cls(cfg, tok, model, family, member)
        p.notes = notes
        return p

    def view(self, family, member=None):
        """The same model answering in the phrasing of another family."""
        p = Predictor(self.run_cfg, self.tok, self.model, family, member or self.member)
        p.notes, p._sample = self.notes, self._sample
        return p

    # ------------------------------------------------------------------ inputs
    @property
    def sample(self):
        """Frames extracted per video file: as many as the run's frame store has per video (then
        `size_frame` of them are sampled, as in training), or `size_frame` if the store is not there."""
        if self._sample is None:
            self._sample = training_sample_count(self.cfg) or self.cfg.size_frame
        return self._sample

    @sample.setter
    def sample(self, k):
        self._sample = int(k) if k else None

    def read_video(self, path, sample=None):
        """A video file (mp4, avi, webm, gif, ...) -> `Video`; DataError naming the file if it cannot be used."""
        try:
            fields, _ = read_video_fields(path, sample or self.sample)
        except DataError as e:
            raise DataError(f"{path}: {e}") from None
        return Video(os.path.basename(os.fspath(path)), fields, os.fspath(path))

    def frame_store(self, tsv):
        """A frame TSV (with its .lineidx or .id2lineidx.pkl), or a folder of video files, read as the run's
        stores are."""
        if os.path.isdir(tsv):
            return VideoFolderStore(tsv, self.cfg.size_frame, self.cfg.size_img, sample=self.sample)
        return VideoStore.from_tsv(tsv, self.cfg.size_frame, self.cfg.size_img, frame_column=self.cfg.frame_column)

    @staticmethod
    def tsv_video(store, key):
        """Video `key` of a `frame_store` (DataError naming the file if it is not there)."""
        return Video(key, store.frame_strings(key), f"{store.path}:{key}")

    def clip(self, video):
        """(size_frame, 3, size_img, size_img): the eval clip the model sees."""
        return self.sampler(video.fields, train=False, file=video.source or video.name)

    def batches(self, videos, batch_size=None):
        """(indices, clips on the model's device) per batch of `videos` (default: the run's eval batch)."""
        batch_size = batch_size or self.cfg.size_batch_eval or self.cfg.size_batch
        for s in range(0, len(videos), batch_size):
            idx = list(range(s, min(s + batch_size, len(videos))))
            yield idx, torch.stack([self.clip(videos[i]) for i in idx]).to(self.device)

    # ------------------------------------------------------------------ tasks
    def task(self, **changes):
        """This view's Task (no data), with config `changes` (e.g. size_option); checks the model has
        the head it needs."""
        cfg = self.cfg.copy()
        cfg.update(changes)
        task = build_task(self.family, cfg, self.tok, build_data=False)
        if self.head_name:
            task.head_name = self.head_name
        have = self.model.cfg.heads
        for name, k in task.heads().items():
            if name not in have or have[name] != k:
                raise ConfigError(f"this checkpoint has no {name} head with {k or 'MLM'} outputs for {self.family} "
                                  f"(its heads: {', '.join(have)}); ask in the phrasing it was trained for")
        return task

    def _run(self):
        """Inference mode under the run's precision."""
        stack = contextlib.ExitStack()
        stack.enter_context(torch.inference_mode())
        stack.enter_context(autocast(resolve_precision(self.cfg, self.device), self.device))
        return stack

    def ask(self, family, videos, batch_size=None, changes=None, **query):
        """`family`'s answer to `query` for each video (its Task.predict), in that family's phrasing;
        `changes`: config keys the question needs (e.g. size_option)."""
        if family != self.family:
            return self.view(family).ask(family, videos, batch_size, changes, **query)
        task = self.task(**(changes or {}))
        with self._run():
            return task.predict(self.model, self.batches(videos, batch_size), **query)

    def answer(self, videos, question, k=5, batch_size=None):
        """Open-ended QA (a `[MASK]` in the question makes it fill-in-the-blank): per video the top-`k`
        (answer, probability) of the MLM head (task-specific head: of its classes)."""
        return self.ask("qaoe", videos, batch_size, question=question, k=k)

    def choose(self, videos, question, options, batch_size=None):
        """Multiple choice in this run's phrasing (`mc_mode`: option index digit, or true/false per
        option): per video one number per option, higher = more likely (softmax over the options for the
        digit phrasing, P(true) of each option for true/false)."""
        return self.ask("qamc", videos, batch_size, {"size_option": len(options)}, question=question,
                        options=options)

    def rank(self, videos, text, batch_size=None):
        """Video-text matching (retrieval): the score of `text` against each video (P(true) of the MLM
        head's true/false, as retrieval evaluation ranks)."""
        return self.ask("retrieval", videos, batch_size, text=text)

    def caption(self, videos, batch_size=None):
        """A caption per video, decoded with the MLM head (`max_gen_length`, `num_beams`, ... from the
        config): [(caption, confidence = exp(mean log-prob))]."""
        return self.ask("captioning", videos, batch_size)


def read_inputs(predictor: Predictor, paths: Sequence[str] = (), tsv: Optional[str] = None,
                keys: Sequence[str] = (), sample: Optional[int] = None):
    """(videos, errors): video files and TSV keys read; one error line per input that cannot be used."""
    videos, errors = [], []
    for path in paths:
        try:
            videos.append(predictor.read_video(path, sample))
        except DataError as e:
            errors.append(str(e))
    if tsv:
        try:
            store = predictor.frame_store(tsv)
        except DataError as e:
            return videos, errors + [str(e)]
        for k in keys:
            try:
                videos.append(predictor.tsv_video(store, k))
            except DataError as e:
                errors.append(str(e))
    return videos, errors
