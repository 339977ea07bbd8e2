"""Every config key, declared once: type, default, allowed values, a one-line description and its metadata.

Validation, `--help`, docs/config.md and every table of keys (run-wide keys, keys that may change on
resume, keys taken from a checkpoint's args.json, ...) are derived from these declarations
(lavender.config). Keys marked `original` are the original repository's; the others are ours.

Metadata (fields of `Key`):
  scope      "task": a multi-task entry may set it for its task; "run": the whole run / the one shared model
  resume     may differ when a run is resumed (it does not change what the run computes)
  path       a path: relative values in a config file are relative to the repository root
  cli_only   taken only from the current command line, never from a file (a warning says it was ignored)
  from_ckpt  taken from the args.json beside `path_ckpt`: "model" always, "eval" for evaluation-only runs
  task_key   read by some task families only: what it applies to (other families refuse a non-default value)
  family_key read by some task families only: what it applies to (other families accept it with a warning at
             start-up that it has no effect there: the original's configs set such keys where they do nothing)
  no_effect  accepted for compatibility and without effect: why (a warning when set)
  not_built  its feature is not built: any value but the default is refused, with this reason
  read_in    modules (under lavender/) that read it (tests/config/test_config_keys.py checks)
"""
from dataclasses import dataclass
from typing import Any

from .types import AnyOf, Bool, Choice, Dict, Float, FrameColumn, Int, ListOf, Optional, Str

__all__ = ["Key", "KEYS", "SECTIONS"]


@dataclass(frozen=True)
class Key:
    name: str
    type: Any
    default: Any
    doc: str
    section: str = ""
    original: bool = True
    scope: str = "task"
    resume: bool = False
    path: bool = False
    cli_only: bool = False
    from_ckpt: str = ""
    task_key: str = ""
    family_key: str = ""
    no_effect: str = ""
    not_built: str = ""
    read_in: tuple = ()


SECTIONS = {
    "data": "Where frames and texts come from, and how a clip is made",
    "model": "The model's shapes and the weights it starts from",
    "tasks": "How a task family phrases its texts, and family-specific settings",
    "optimisation": "The optimiser, its schedule and precision",
    "evaluation": "What is evaluated and how it is scored",
    "generation": "Caption decoding",
    "run": "The run: output, logging, resume, processes",
}

_T, _R = "task", "run"
_CAP = "captioning"
_MULTI = "a multi-task run (main_multi_task_mlm.py)"
_BERT = "bert-base-uncased"


def _keys(section, *keys):
    return [Key(**{**k, "section": section}) for k in keys]


def K(name, type, default, doc, **meta):
    return dict(name=name, type=type, default=default, doc=doc, **meta)


def ours(name, type, default, doc, **meta):
    return K(name, type, default, doc, original=False, **meta)


KEYS = _keys(
    "data",
    K("dataset", Optional(AnyOf(Str(), ListOf(Str()), Dict(), what="a name, a list of names or {name: folder}")),
      None, "video source: frames from {data_dir}/img_{dataset}.tsv (pretraining: names, or {name: folder})",
      read_in=("tasks/base.py", "tasks/pretrain.py")),
    K("data_dir", Str(), "./_datasets", "folder of the frame stores and annotation files", path=True,
      read_in=("tasks/base.py", "tasks/pretrain.py")),
    K("size_img", Int(min=32), 224, "side of the square frames the model sees, in pixels", from_ckpt="eval",
      read_in=("tasks/base.py", "tasks/pretrain.py")),
    K("size_frame", Int(min=1), 4, "frames sampled per clip (at most max_size_frame)", from_ckpt="eval",
      read_in=("tasks/base.py", "tasks/pretrain.py")),
    K("size_txt", Int(min=2), 25, "text length S in tokens ([CLS] and [SEP] included)", from_ckpt="eval",
      read_in=("tasks/qa_oe.py", "tasks/qa_mc.py", "tasks/retrieval.py", "tasks/pretrain.py")),
    K("img_transform", ListOf(Choice("img_rand_crop", "img_center_crop", "pad_resize", "vid_rand_crop"),
                              nonempty=True), ["img_rand_crop"],
      "training transforms, one drawn per frame (evaluation: center crop, or pad_resize alone)",
      from_ckpt="eval", read_in=("tasks/base.py",)),
    K("data_ratio", Float(min=0, min_open=True), 1.0,
      "train on a part of the videos: < 1 that fraction, > 1 that many", task_key="the training split of "
      "annotation-item tasks (not pretraining parts)", read_in=("tasks/base.py",)),
    K("size_part", AnyOf(Int(min=1), Dict(), what="a number of parts >= 1, or a dict {dataset: parts}"), 8,
      "pretraining: train parts {name}_train_0..N-1.tsv per dataset (or {dataset: parts})",
      task_key="pretraining", read_in=("tasks/pretrain.py",)),
    K("train_yaml", Optional(Str()), None, "captioning: the train split's yaml (SwinBERT layout), under data_dir",
      read_in=("tasks/caption.py",)),
    K("val_yaml", Optional(Str()), None, "captioning: the val split's yaml", read_in=("tasks/caption.py",)),
    K("test_yaml", Optional(Str()), None, "captioning: the test split's yaml", read_in=("tasks/caption.py",)),
    K("n_workers", Int(min=0), 4, "DataLoader worker processes (0: load in the main process)", resume=True,
      read_in=("tasks/base.py",)),
    K("txt_dir", Optional(Str()), None, "unused", no_effect="the original sets it to data_dir and never reads it "
      "(annotations are {data_dir}/txt_{task}.json)"),
    K("img_tsv_dir", Optional(Str()), None, "unused", no_effect="the original sets it to data_dir and never reads "
      "it (frames are {data_dir}/img_{dataset}.tsv)"),
    ours("frame_column", FrameColumn(), "auto", "TSV column where frames start: auto (detects base64 images), "
         "swinbert (SwinBERT's rule) or a number", read_in=("tasks/base.py",)),
    ours("skip_bad", Bool(), False, "skip and count bad or missing videos instead of stopping",
         read_in=("tasks/base.py",)),
    ours("image_datasets", ListOf(Str()), [], "pretraining: more dataset names read as images (one frame)",
         read_in=("tasks/pretrain.py",)),
    ours("video_dir", Optional(Str()), None, "read clips from the video files in this folder (id: file name without "
         "extension) instead of a frame TSV, decoded in the loader workers", path=True,
         read_in=("tasks/base.py", "tasks/pretrain.py", "tasks/caption.py")),
    ours("video_sample", Int(min=0), 0, "video_dir: frames extracted per file, as extract_video-frame.py --sample "
         "(0: size_frame)", from_ckpt="eval", read_in=("tasks/base.py",)),
    ours("video_cache", Optional(Str()), None, "video_dir: folder keeping each file's extracted frames after their "
         "first decode (later epochs read them instead of decoding)", path=True, resume=True,
         read_in=("tasks/base.py",)),
) + _keys(
    "model",
    K("vis_backbone", Choice("vidswin", what="the only visual backbone (as the original)"), "vidswin",
      "visual backbone", scope=_R, from_ckpt="model", not_built="Video Swin (vidswin) is the only visual backbone, "
      "as in the original"),
    K("vis_backbone_size", Choice("tiny", "small", "base", "large"), "base", "Video Swin size", scope=_R,
      from_ckpt="model", read_in=("models/factory.py",)),
    K("vis_backbone_init", Choice("3d", "2d", "random", what="3d: Kinetics Video Swin weights, 2d: ImageNet Swin "
                                  "weights inflated to 3D, random"), "2d",
      "Video Swin's starting weights when there is no path_ckpt", scope=_R, read_in=("models/factory.py",)),
    K("kinetics", Int(choices=(-1, 400, 600)), -1, "which Kinetics Video Swin weights vis_backbone_init 3d loads",
      scope=_R, from_ckpt="model", read_in=("models/factory.py",)),
    K("txt_backbone", Str(), _BERT, "BERT whose embeddings embed the text (a name under _models/ or a folder)",
      scope=_R, from_ckpt="model", read_in=("models/factory.py",)),
    K("fusion_encoder", Str(), _BERT, "BERT that fuses video and text, with its MLM head", scope=_R,
      from_ckpt="model", read_in=("models/factory.py",)),
    K("tokenizer", Optional(Str()), None, "WordPiece vocabulary (default: txt_backbone's)", scope=_R,
      from_ckpt="model", read_in=("run.py",)),
    K("txt_backbone_embed_only", Bool(), True, "text through BERT embeddings only (false: also its own encoder)",
      scope=_R, from_ckpt="model", read_in=("models/factory.py",)),
    K("path_ckpt", Str(), "", "weights to start from (a LAVENDER checkpoint, or another layout the loader reads)",
      scope=_R, path=True, read_in=("models/factory.py",)),
    K("fusion_encoder_rand_init", Bool(), False, "the fusion encoder starts random instead of from BERT", scope=_R,
      read_in=("models/factory.py",)),
    K("reinit_head", Bool(), False, "re-create the task-specific heads with fresh weights after path_ckpt",
      scope=_R, read_in=("models/factory.py",)),
    K("max_size_frame", Int(min=1), 6, "rows of the frame embedding table", scope=_R,
      read_in=("models/factory.py",)),
    K("max_size_patch", Int(min=1), 14, "side of the visual position table (patches per frame side)", scope=_R,
      read_in=("models/factory.py",)),
    K("swinbert", Bool(), False, "SwinBERT-compatible visual projection (to load SwinBERT checkpoints)", scope=_R,
      from_ckpt="model", read_in=("models/factory.py",)),
    K("use_checkpoint", AnyOf(Int(min=0), Bool(), what="true, false or a number of stages >= 0"), False,
      "activation checkpointing in Video Swin (less memory, slower): true (every stage), false, or the first N "
      "stages", scope=_R,
      read_in=("models/factory.py",)),
    ours("checkpoint_keep", Choice("none", "linear", "matmul"), "linear", "with use_checkpoint: what a "
         "checkpointed Swin block keeps instead of recomputing: none (recompute all, as the original), linear (its "
         "linear layers' outputs: faster, about 1% more peak memory) or matmul (also attention's products: more "
         "memory); none and linear compute the same numbers bit for bit, matmul to within 1e-10", scope=_R, read_in=("models/factory.py",)),
    K("size_patch", Int(), 32, "unused", no_effect="the visual token grid follows from the frames and Video Swin "
      "(32 px per token); the original used it only to recompute that grid in pretraining"),
    K("is_decoder", Bool(), False, "decoder-style fusion encoder", not_built="is_decoder true (a decoder-style "
      "fusion encoder with a key/value cache) is not built; the original raised NotImplementedError on that path too"),
    ours("head", Choice("mlm", "task_specific"), "mlm", "mlm: LAVENDER's MLM head; task_specific: the baseline "
         "heads", scope=_R, read_in=("tasks/base.py", "models/factory.py")),
    ours("bert_init", Choice("pretrained", "random"), "pretrained", "text side from the pretrained BERT folders, "
         "or random (tiny test models)", scope=_R, read_in=("models/factory.py",)),
    ours("swin_config", Optional(Dict()), None, "Video Swin sizes to override (tiny demo models)", scope=_R,
         from_ckpt="model", read_in=("models/factory.py",)),
    ours("bert_config", Optional(Dict()), None, "BertConfig fields to override (tiny demo models)", scope=_R,
         from_ckpt="model", read_in=("models/factory.py",)),
    ours("compile", Bool(), False, "torch.compile the video and fusion encoders", scope=_R,
         read_in=("models/factory.py",)),
    ours("ckpt_strict", Bool(), True, "a weights file that fills only part of what it should is an error "
         "(false: load what fits, with a warning)", scope=_R, read_in=("models/factory.py",)),
    ours("trust_checkpoint", Bool(), False, "allow weights files that need full unpickling (can run code from "
         "the file)", scope=_R, resume=True, cli_only=True, read_in=("models/factory.py",)),
) + _keys(
    "tasks",
    K("type", Optional(Str()), None, "task family: qaoe, qamc, retrieval, pretrain, captioning or multi-task",
      read_in=("run.py",)),
    K("task", Optional(Str()), None, "task name: annotations txt_{task}.json, run folder _{task}_*, checkpoint "
      "names", read_in=("tasks/base.py",)),
    K("size_vocab", Int(), -1, "answer classes of the task-specific QA head (-1: none; the MLM head needs none)",
      family_key="the task-specific open-ended QA head (head task_specific)", read_in=("tasks/qa_oe.py",)),
    K("size_option", Int(min=2), 5, "options per multiple-choice question", family_key="multiple choice",
      read_in=("tasks/qa_mc.py",)),
    K("temp", Float(min=0, min_open=True), 1.0, "temperature of the task-specific retrieval loss (NormSoftmax)",
      family_key="the task-specific retrieval loss (head task_specific)", read_in=("tasks/retrieval.py",)),
    K("pretrain_tasks", ListOf(Choice("mtm", "vtm"), nonempty=True), ["mtm", "vtm"],
      "pretraining objectives: masked tokens (mtm), video-text matching (vtm)", task_key="pretraining",
      read_in=("tasks/pretrain.py",)),
    K("p_mask", Float(min=0, max=1, max_open=True), 0.15, "probability that a text token is masked "
      "(pretraining MTM, captioning)", family_key="pretraining and captioning", read_in=("tasks/pretrain.py",)),
    K("enable_task_token", Bool(), False, "prepend the task's task-token embedding to the text",
      read_in=("tasks/modeling.py",)),
    K("task_token", Optional(Choice("vtm", "mc", "oe", "cap", what="rows of the model's task-token table")), None,
      "task-token row to use instead of the family's own", read_in=("tasks/modeling.py",)),
    K("enable_prompt", Bool(), False, "prepend the task's prompt sentence to the text", read_in=("tasks/modeling.py",)),
    K("mask_pos", Choice("append", "prepend", "insert", "replace"), "append",
      "option-index multiple choice: where the [MASK] goes", task_key="the option-index multiple-choice layout "
      "(qamc with mc_mode digit, head mlm)", read_in=("tasks/qa_mc.py",)),
    K("datasets", Optional(ListOf(Dict())), None, "multi-task: the task entries, each a dict of keys for its task",
      scope=_R, read_in=("tasks/multi_task.py",)),
    K("size_txt_pre", Int(), 25, "unused", no_effect="the original never reads it (a pretext is one task token "
      "or the prompt sentence's length)"),
    K("attn_mask_type", Str(), "seq2seq", "unused", no_effect="the original ignores it: captioning always uses "
      "the seq2seq mask, the other tasks the full one"),
    K("label_smoothing", Float(min=0, max=1, max_open=True), 0.0, "captioning loss: label smoothing",
      family_key=_CAP, read_in=("tasks/caption.py",)),
    K("drop_worst_ratio", Float(min=0, max=1, max_open=True), 0.0, "captioning loss: share of the worst token "
      "losses dropped", family_key=_CAP, read_in=("tasks/caption.py",)),
    ours("drop_worst_after", Int(min=0), 0, "captioning loss: drop_worst_ratio applies after this many training "
         "batches", family_key=_CAP, read_in=("tasks/caption.py",)),
    ours("caption_txt_causal", Bool(), True, "captioning with the text's own encoder (txt_backbone_embed_only "
         "false): that encoder is causal in training, as in decoding (false: bidirectional in training, the "
         "original's)", family_key=_CAP, read_in=("tasks/caption.py",)),
    ours("mc_mode", Choice("auto", "digit", "truefalse"), "auto", "multiple choice: option-index digit (TGIF), "
         "true/false per option (MSRVTT/LSMDC-MC), or auto from the task name", read_in=("tasks/qa_mc.py",)),
    ours("task_sampling", Choice("uniform", "proportional", "temperature"), "uniform", "multi-task: which task a "
         "step serves: uniformly (the original), in proportion to the tasks' sizes, or to the sizes to the power "
         "1 / task_temperature", scope=_R, task_key=_MULTI, read_in=("tasks/multi_task.py",)),
    ours("task_temperature", Float(min=0, min_open=True), 2.0, "multi-task, task_sampling temperature: 1 is "
         "proportional, larger tends to uniform", scope=_R, task_key=_MULTI, read_in=("tasks/multi_task.py",)),
    ours("loss_weight", Float(min=0), 1.0, "multi-task: this task's loss is multiplied by it (in a datasets entry, "
         "or for every task)", task_key=_MULTI,
         read_in=("tasks/multi_task.py",)),
) + _keys(
    "optimisation",
    K("size_epoch", Int(min=0), 20, "training epochs (0: evaluate only)", scope=_R,
      read_in=("engine/trainer.py",)),
    K("size_batch", Int(min=1), 8, "batch per process", read_in=("tasks/base.py",)),
    K("lr", Float(min=0, min_open=True), 1.2e-5, "peak learning rate of AdamW (linear warm-up and decay)",
      scope=_R, read_in=("engine/optim.py",)),
    K("decay", Float(min=0), 1e-3, "AdamW weight decay", scope=_R, read_in=("engine/optim.py",)),
    K("vis_backbone_lr_mul", Float(min=0, min_open=True), 1.0, "learning-rate factor of Video Swin's parameters",
      scope=_R, read_in=("engine/optim.py",)),
    K("max_grad_norm", Float(), -1.0, "gradient clipping norm (<= 0: off)", scope=_R,
      read_in=("engine/trainer.py",)),
    K("deepspeed", Bool(), False, "the original's DeepSpeed switch", scope=_R,
      no_effect="DeepSpeed is not used; precision auto trains in fp16 autocast with a loss scaler on a GPU either "
      "way, as the original did with or without DeepSpeed (docs/differences.md)"),
    K("seed", Int(), 88, "seed of weights, data order, augmentation and masking", scope=_R,
      read_in=("run.py",)),
    ours("precision", Choice("auto", "fp32", "fp16", "bf16"), "auto", "numeric precision (auto: fp16 autocast with "
         "a loss scaler on a GPU, as the original; fp32 on a CPU)", scope=_R, read_in=("engine/precision.py",)),
    ours("grad_accum", Int(min=1), 1, "batches per optimizer step", scope=_R, read_in=("engine/trainer.py",)),
    ours("max_steps", Int(min=0), 0, "stop after this many optimizer steps (0: no limit); the learning-rate "
         "schedule ends there", scope=_R, read_in=("engine/trainer.py",)),
    ours("deterministic", Bool(), False, "deterministic kernels only (cuDNN, cuBLAS, torch): a rerun on the same "
         "machine and thread count gives identical weights; slower on GPUs", scope=_R, read_in=("run.py",)),
) + _keys(
    "evaluation",
    K("size_test", Optional(Int(min=1)), None, "full test-set size: test ac_1/ac_5 are scaled by n / size_test "
      "(the original's adjusted accuracy)", family_key="open-ended QA", read_in=("tasks/qa_oe.py",)),
    K("multi_clip_testing", Bool(), False, "retrieval evaluation: average each video's tokens over its clips",
      task_key="retrieval evaluation", read_in=("tasks/retrieval.py",)),
    ours("eval_only", Bool(), False, "evaluate the loaded checkpoint only (as size_epoch 0)", scope=_R,
         read_in=("config/loading.py",)),
    ours("size_batch_eval", Int(min=0), 0, "evaluation batch (0: size_batch)", resume=True,
         read_in=("tasks/base.py",)),
    ours("eval_splits", ListOf(Str()), ["val", "test"], "splits evaluated after each epoch", resume=True,
         read_in=("tasks/base.py",)),
    ours("retrieval_score", Choice("prob", "ratio"), "prob", "true/false scoring: softmax probability of true, or "
         "the original's ratio of logits", read_in=("tasks/retrieval.py",)),
    ours("retrieval_text_batch", Int(min=0), 0, "full retrieval evaluation: texts fused per pass (0: auto)",
         resume=True, read_in=("tasks/retrieval_scoring.py",)),
    ours("caption_meteor", Bool(), True, "captioning evaluation: compute METEOR (a Java run of 10-40 s per split)",
         family_key=_CAP, read_in=("tasks/caption.py",)),
) + _keys(
    "generation",
    K("max_gen_length", Int(min=2), 20, "caption length limit in tokens, the leading [CLS] included",
      family_key=_CAP, read_in=("models/generation.py",)),
    K("num_beams", Int(min=1), 1, "beam search width (1: greedy)", family_key=_CAP,
      read_in=("models/generation.py",)),
    K("do_sample", Bool(), False, "sample tokens instead of taking the most likely", family_key=_CAP,
      read_in=("models/generation.py",)),
    K("gen_temperature", Float(min=0, min_open=True), 1.0, "sampling temperature", family_key=_CAP,
      read_in=("models/generation.py",)),
    K("top_k", Int(min=0), 0, "sampling: keep the k most likely tokens (0: off)", family_key=_CAP,
      read_in=("models/generation.py",)),
    K("top_p", Float(min=0, max=1, min_open=True), 1.0, "sampling: keep the smallest set with this probability "
      "(1: off)", family_key=_CAP, read_in=("models/generation.py",)),
    K("repetition_penalty", Float(min=0, min_open=True), 1.0, "divide the logits of tokens already generated "
      "(1: off)", family_key=_CAP, read_in=("models/generation.py",)),
) + _keys(
    "run",
    K("path_output", Str(), "./_snapshot", "where run folders _{task}_{time}/ are made", scope=_R, path=True,
      resume=True, read_in=("engine/run_dir.py",)),
    K("logging_steps", Int(min=1), 20, "log the loss every this many optimizer steps", scope=_R, resume=True,
      read_in=("engine/trainer.py",)),
    ours("resume", Str(), "", "continue a run: latest, a run folder or a resume file", scope=_R, resume=True,
         read_in=("engine/run_dir.py",)),
    ours("save_steps", Int(min=0), 0, "also write the resume state every N optimizer steps (0: epoch ends only)",
         scope=_R, resume=True, read_in=("engine/trainer.py",)),
    ours("log_level", Choice("debug", "info", "warning", "error", "critical"), "info",
         "console and stdout.txt log level",
         scope=_R, resume=True, read_in=("run.py",)),
    ours("keep_best", Bool(), True, "keep the weights of the best val epoch as ckpt_violet_{task}_best", scope=_R,
         resume=True, read_in=("engine/run_files.py",)),
    ours("keep_last", Int(min=-1), 0, "epoch weight files kept besides the best: the last N (-1: every epoch, as "
         "the original)", scope=_R, resume=True, read_in=("engine/run_files.py",)),
    ours("keep_resume", Bool(), False, "keep resume.pt once the run has finished (weights + optimiser state, about "
         "3x a checkpoint)", scope=_R, resume=True, read_in=("engine/trainer.py",)),
    ours("ckpt_format", Choice("pt", "safetensors"), "pt", "file format of the epoch and best weights (pt: what "
         "the original loads)", scope=_R, resume=True, read_in=("engine/run_files.py",)),
    ours("tensorboard", Bool(), True, "also write the logged values as TensorBoard event files into the run folder",
         scope=_R, resume=True, read_in=("engine/trainer.py",)),
    ours("check", Bool(), False, "only check that every input the run reads exists (data, weights, path_ckpt), list "
         "what is missing, and exit", scope=_R, resume=True, cli_only=True, read_in=("run.py",)),
)
