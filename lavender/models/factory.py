"""The model of a run: its settings (`model_config`, from the run config), the model (`build_model`) and
the weights it starts from (`load_starting_weights`), decided from the config in one place
(docs/original.md#weight-initialisation-order-and-update_args).

As the original, each step loads on top of the previous one:
1. the text side (``bert_init: pretrained``): BERT embeddings (and, with ``txt_backbone_embed_only``
   false, the text's own encoder) from the ``txt_backbone`` folder, the fusion encoder and the MLM head
   from the ``fusion_encoder`` folder (``_models/bert-base-uncased/``); with ``fusion_encoder_rand_init``
   the fusion encoder stays random;
2. the visual side, only without ``path_ckpt`` (the original forces ``vis_backbone_init`` to "random"
   when ``path_ckpt`` exists): Kinetics Video Swin ("3d"), ImageNet 2D Swin inflated to 3D ("2d") or
   random;
3. ``path_ckpt``: tensors the file does not hold keep the values of steps 1-2 (with ``ckpt_strict``, the
   default, a file that leaves part of the model unfilled is still an error);
4. ``reinit_head``: the task-specific heads are re-created with fresh weights and their configured sizes.
A summary logs where the value of every parameter came from.

Every load obeys `ckpt_strict` (a partial load is an error unless it is false, then a warning) and
`trust_checkpoint` (files that need full unpickling are refused unless it is true); see weights/.
"""
import json
import logging
import os

from ..config import DEFAULTS
from ..errors import ConfigError
from ..paths import MODELS_DIR, Input, kinetics_ckpt, resolve_bert_dir, swin2d_ckpt
from .lavender import BERT_FIELDS, Lavender, ModelConfig, compile_encoders, default_bert
from .video_swin import SwinConfig
from .weights import HF_WEIGHT_FILES, load_weights, short_list

log = logging.getLogger("lavender")

RANDOM = "random init"
# what a model is built from besides config keys (`build_model`'s settings may hold them)
MODEL_EXTRAS = ("heads", "head_size", "attn_implementation")


def _settings(cfg):
    """A run config, or a dict of some config keys (the declared defaults for the others)."""
    return {**DEFAULTS, **{k: v for k, v in dict(cfg).items() if v is not None or k not in DEFAULTS}}


def bert_settings(name=None, bert_dir=None, overrides=None):
    """BertConfig fields: bert-base-uncased defaults, or the local folder's config.json, then ``overrides``."""
    vals = default_bert()
    if bert_dir is None and name:
        bert_dir = resolve_bert_dir(name)
    if bert_dir and os.path.isfile(os.path.join(bert_dir, "config.json")):
        with open(os.path.join(bert_dir, "config.json")) as f:
            found = json.load(f)
        vals.update({k: found[k] for k in BERT_FIELDS if k in found})
    vals.update(overrides or {})
    return vals


def model_config(settings, bert_dir=None):
    """`ModelConfig` from run settings (a config, or a dict of config keys plus MODEL_EXTRAS)."""
    s = _settings(settings)
    swin = SwinConfig.from_size(s["vis_backbone_size"], s["swin_config"], size_img=s["size_img"],
                                use_checkpoint=s["use_checkpoint"], checkpoint_keep=s["checkpoint_keep"])
    name = s["fusion_encoder"] or s["txt_backbone"]
    bert = bert_settings(name, bert_dir, s["bert_config"])
    extras = {k: s[k] for k in MODEL_EXTRAS if k in s}
    return ModelConfig(swin=swin, bert=bert, max_size_frame=int(s["max_size_frame"]),
                       max_size_patch=int(s["max_size_patch"]), head=s["head"], swinbert=bool(s["swinbert"]),
                       txt_encoder=not s["txt_backbone_embed_only"], **extras)


def build_model(settings, bert_dir=None):
    """A randomly initialised :class:`Lavender` from run settings (see `model_config`); its starting
    weights: `load_starting_weights`."""
    return Lavender(model_config(settings, bert_dir))


def create_model(cfg, heads=None):
    """Build the model for a run config (with `heads`, see `ModelConfig.heads`), load its starting weights,
    and compile its encoders when the config says `compile`."""
    args = dict(cfg)
    if heads is not None:
        args["heads"] = heads
    s = _settings(cfg)
    model = build_model(args, bert_dir=resolve_bert_dir(s["fusion_encoder"] or s["txt_backbone"]))
    log.info(describe_sources(load_starting_weights(model, cfg)))
    if s["compile"]:
        compile_encoders(model)
    return model


def _has_weights(folder):
    return bool(folder) and any(os.path.isfile(os.path.join(folder, f)) for f in HF_WEIGHT_FILES)


def load_starting_weights(model, cfg):
    """Load the weights a run starts from into `model` (module doc); returns {parameter: where its value
    comes from}."""
    cfg = _settings(cfg)
    sources = {k: RANDOM for k, _ in model.named_parameters()}
    head_names = [n for n, k in model.cfg.heads.items() if k is not None]
    ckpt, reinit = cfg["path_ckpt"], bool(cfg["reinit_head"])
    if reinit and not head_names:
        raise ConfigError("reinit_head re-creates the task-specific heads (head task_specific); this model has "
                          "only the MLM head, which always comes from the pretrained weights")

    def load(path, label, **kw):
        rep = load_weights(model, path, strict=cfg["ckpt_strict"], trust=cfg["trust_checkpoint"],
                           log=log.info, warn=log.warning, **kw)
        sources.update({k: label for k in rep.loaded if k in sources})

    if cfg["bert_init"] == "pretrained":
        _load_text(cfg, load, required=not ckpt)
    init = cfg["vis_backbone_init"]
    size = cfg["vis_backbone_size"]
    if ckpt:
        if init != "random":
            log.info("vis_backbone_init %s not used: Video Swin starts random under path_ckpt, as the original "
                     "(the checkpoint holds it)", init)
    elif init == "3d":
        load(kinetics_ckpt(size, cfg["kinetics"], cfg["size_img"]), "Kinetics Video Swin")  # a missing file says where
    elif init == "2d":
        load(swin2d_ckpt(size, cfg["size_img"]), "ImageNet 2D Swin, inflated to 3D")
    if ckpt:
        skip = {h + ".": "reinit_head re-creates this head" for h in head_names} if reinit else None
        load(ckpt, f"path_ckpt {os.path.basename(ckpt)}", skip=skip)
    if reinit:
        names = model.reinit_heads()
        sources.update({k: f"{RANDOM} (reinit_head)" for k, _ in model.named_parameters()
                        if k.split(".")[0] in names})
    return sources


def required_weights(cfg):
    """The weight files `load_starting_weights` will read for `cfg` (lavender.paths.Input), checked before
    any work: path_ckpt, the BERT folders it cannot do without, the Video Swin file of vis_backbone_init."""
    s = _settings(cfg)
    ckpt, out = s["path_ckpt"], []
    if ckpt:
        out.append(Input("path_ckpt", ckpt, "checkpoint"))
    elif s["bert_init"] == "pretrained":  # with path_ckpt, missing BERT tensors must come from the file
        for name in dict.fromkeys([s["fusion_encoder"] or s["txt_backbone"], s["txt_backbone"]]):
            folder = resolve_bert_dir(name)
            if name and not _has_weights(folder):
                out.append(Input(f"BERT weights {name!r}", folder or os.path.join(MODELS_DIR, name), "bert"))
    if not ckpt and s["vis_backbone_init"] == "3d":
        out.append(Input("Video Swin weights (vis_backbone_init 3d)", kinetics_ckpt(s["vis_backbone_size"],
                                                                                    s["kinetics"]), "video_swin"))
    elif not ckpt and s["vis_backbone_init"] == "2d":
        out.append(Input("2D Swin weights (vis_backbone_init 2d)", swin2d_ckpt(s["vis_backbone_size"]), "swin2d"))
    return out


def _load_text(cfg, load, required):
    """Step 1: BERT embeddings from txt_backbone, fusion encoder + MLM head from fusion_encoder (one load
    when both name the same folder)."""
    fus_name = cfg["fusion_encoder"] or cfg["txt_backbone"]
    txt_name = cfg["txt_backbone"] or fus_name
    txt_dir, fus_dir = resolve_bert_dir(txt_name), resolve_bert_dir(fus_name)
    rand = {"trsfr.": "fusion_encoder_rand_init (the fusion encoder starts random)"} \
        if cfg["fusion_encoder_rand_init"] else None
    if txt_dir == fus_dir:
        parts = [(fus_name, fus_dir, None, rand)]
    else:
        parts = [(txt_name, txt_dir, ("enc_txt.",), None), (fus_name, fus_dir, ("trsfr.", "fc_mtm."), rand)]
    for name, folder, only, skip in parts:
        if _has_weights(folder):
            load(folder, name if name == folder else f"{name} ({folder})", only=only, skip=skip)
        elif required:
            raise FileNotFoundError(
                f"pretrained text weights for {name!r} not found: put bert-base-uncased's config.json, vocab.txt "
                f"and model.safetensors (or pytorch_model.bin) in {os.path.join(MODELS_DIR, 'bert-base-uncased')}/ "
                f"(see _models/README.md), or pass --path_ckpt, or --bert_init random to start the text side "
                f"from random weights")
        else:
            log.info("no pretrained weights for %r: its tensors must come from path_ckpt", name)


def describe_sources(sources):
    """Where the value of every parameter comes from, grouped by source (one log message)."""
    groups = {}
    for key, src in sources.items():
        groups.setdefault(src, []).append(key)
    lines = [f"starting weights of the {len(sources)} parameter tensors, by source:"]
    lines += [f"  {src}: {len(keys)} ({short_list(keys, 3)})" for src, keys in groups.items()]
    return "\n".join(lines)
