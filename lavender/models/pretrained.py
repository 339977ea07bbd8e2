"""Which weights a run starts from (SPEC §2.11), decided from its config in one place.

* `path_ckpt` given: that checkpoint (LAVENDER/VIOLET, our own, or any layout the loader knows).
* otherwise: the text side from the BERT folder the config names (`_models/bert-base-uncased/`),
  and the visual side from the Video Swin Kinetics checkpoint when `vis_backbone_init` is "3d"
  (random when "random").

Every load obeys `ckpt_strict` (a partial load is an error unless it is false, then a warning) and
`trust_checkpoint` (files that need full unpickling are refused unless it is true); see checkpoint.py.
"""
import logging
import os

from ..paths import MODELS_DIR, kinetics_ckpt, resolve_bert_dir
from .checkpoint import HF_WEIGHT_FILES, load_weights
from .lavender import build_model

log = logging.getLogger("lavender")


def create_model(cfg, heads=None):
    """Build the model for a run config (with `heads`, see `ModelConfig.heads`) and load its starting weights."""
    bert_name = cfg.get("fusion_encoder") or cfg.get("txt_backbone")
    bert_dir = resolve_bert_dir(bert_name)
    args = dict(cfg)
    if heads is not None:
        args["heads"] = heads
    model = build_model(args, bert_dir=bert_dir)

    def load(path):
        return load_weights(model, path, strict=cfg.get("ckpt_strict", True), trust=cfg.get("trust_checkpoint", False),
                            log=log.info, warn=log.warning)
    if cfg.get("path_ckpt"):
        load(cfg["path_ckpt"])
        return model
    if not cfg.get("fusion_encoder_rand_init"):
        if not (bert_dir and any(os.path.isfile(os.path.join(bert_dir, f)) for f in HF_WEIGHT_FILES)):
            raise FileNotFoundError(
                f"pretrained text weights for {bert_name!r} not found: put bert-base-uncased's config.json, "
                f"vocab.txt and model.safetensors (or pytorch_model.bin) in "
                f"{os.path.join(MODELS_DIR, 'bert-base-uncased')}/ (see _models/README.md), "
                f"or pass --path_ckpt, or --fusion_encoder_rand_init true to start from random weights")
        load(bert_dir)  # a BertModel folder (no MLM head): the decoder starts from the word embeddings
    init = cfg.get("vis_backbone_init", "3d")
    if init == "3d":
        path = kinetics_ckpt(cfg.get("vis_backbone_size", "base"), cfg.get("kinetics", 600))
        load(path)  # a missing file raises with where to put it
    elif init != "random":
        raise ValueError(f"vis_backbone_init {init!r}: use '3d' (Kinetics Video Swin weights in "
                         f"_models/video_swin_transformer/) or 'random'")
    return model
