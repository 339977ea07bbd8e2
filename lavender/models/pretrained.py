"""Which weights a run starts from (SPEC §2.11), decided from its config in one place.

* `path_ckpt` given: that checkpoint (LAVENDER/VIOLET, our own, or any layout the loader knows).
* otherwise: the text side from the BERT folder the config names (`_models/bert-base-uncased/`),
  and the visual side from the Video Swin Kinetics checkpoint when `vis_backbone_init` is "3d"
  (random when "random").
"""
import logging
import os

import torch

from ..paths import MODELS_DIR, kinetics_ckpt, resolve_bert_dir
from .checkpoint import HF_WEIGHT_FILES, load_weights
from .lavender import build_model, compile_encoders

log = logging.getLogger("lavender")


def create_model(cfg, head_size=None):
    """Build the model for a run config and load its starting weights (encoders compiled if `compile`)."""
    model = _create_model(cfg, head_size)
    if cfg.get("compile"):
        compile_encoders(model)
    return model


def _create_model(cfg, head_size=None):
    bert_name = cfg.get("fusion_encoder") or cfg.get("txt_backbone")
    bert_dir = resolve_bert_dir(bert_name)
    args = dict(cfg)
    if head_size is not None:
        args["head_size"] = head_size
    model = build_model(args, bert_dir=bert_dir)
    info = log.info
    if cfg.get("path_ckpt"):
        load_weights(model, cfg["path_ckpt"], log=info)
        return model
    if not cfg.get("fusion_encoder_rand_init"):
        if not (bert_dir and any(os.path.isfile(os.path.join(bert_dir, f)) for f in HF_WEIGHT_FILES)):
            raise FileNotFoundError(
                f"pretrained text weights for {bert_name!r} not found: put bert-base-uncased's config.json, "
                f"vocab.txt and model.safetensors (or pytorch_model.bin) in "
                f"{os.path.join(MODELS_DIR, 'bert-base-uncased')}/ (see _models/README.md), "
                f"or pass --path_ckpt, or --fusion_encoder_rand_init true to start from random weights")
        rep = load_weights(model, bert_dir, log=info)
        if model.head_type == "mlm" and any(k.startswith("fc_mtm.predictions.decoder.weight") for k in rep.missing):
            # A BertModel checkpoint has no MLM head: start the decoder as HF ties it, from the word embeddings.
            with torch.no_grad():
                model.fc_mtm.predictions.decoder.weight.copy_(model.enc_txt.emb_txt.word_embeddings.weight)
            info("fc_mtm decoder initialised from the word embeddings (the BERT folder has no MLM head)")
    init = cfg.get("vis_backbone_init", "3d")
    if init == "3d":
        path = kinetics_ckpt(cfg.get("vis_backbone_size", "base"), cfg.get("kinetics", 600))
        load_weights(model, path, log=info)  # a missing file raises with where to put it
    elif init != "random":
        raise ValueError(f"vis_backbone_init {init!r}: use '3d' (Kinetics Video Swin weights in "
                         f"_models/video_swin_transformer/) or 'random'")
    return model
