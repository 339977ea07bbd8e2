"""The checkpoint layouts LAVENDER meets, detected from their keys, and the mapping of each to the
model's key names (docs/weights.md#layouts-the-loader-reads).

* ``lavender``   - original LAVENDER/VIOLET ``ckpt_violet_*.pt`` and our own training checkpoints;
* ``video_swin`` - Video Swin Kinetics checkpoints (``backbone.*`` + ``cls_head.*``), bare Swin keys, and 2D
  ImageNet Swin weights (inflated in time by adapt.py);
* ``hf_bert``    - a Hugging Face BERT (BertForMaskedLM / BertForPreTraining / BertModel keys);
* ``swinbert``   - SwinBERT captioning checkpoints, renamed as the original's ``load_SwinBERT_weight``
  (docs/original.md#swinbert-checkpoints); they fill a ``swinbert: true`` model.

Each mapper: (file state_dict, model keys) -> (state_dict in model names, ignored file keys, notes,
{model key prefix: why the file is not expected to fill those keys}).
"""
import re

__all__ = ["LAYOUT_SCOPE", "ALIASES", "TXT_ENCODER", "SWINBERT_RENAMES", "MAPPERS", "detect_layout"]

LAYOUT_SCOPE = {
    "lavender": ("",),
    "video_swin": ("enc_img.swin.",),
    "hf_bert": ("enc_txt.", "trsfr.", "fc_mtm."),
    "swinbert": ("enc_img.", "enc_txt.", "trsfr.", "fc_mtm."),
}
# Keys that are the same tensor in the model: filling one fills the other.
ALIASES = (("fc_mtm.predictions.bias", "fc_mtm.predictions.decoder.bias"),)
TXT_ENCODER = "enc_txt.txt_trsfr."  # the text's own BERT encoder (txt_backbone_embed_only false)


def detect_layout(keys):
    keys = list(keys)
    if any(k.startswith(("trans_encoder.", "swin.backbone.")) for k in keys):
        return "swinbert"
    if any(k.startswith(("backbone.", "cls_head.")) for k in keys) or (
            any(k.startswith(("patch_embed.", "layers.")) for k in keys)
            and not any(k.startswith("enc_img.") for k in keys)):
        return "video_swin"
    if any(k.startswith(("bert.", "cls.predictions.", "cls.seq_relationship.", "embeddings.word_embeddings",
                         "encoder.layer.")) for k in keys):
        return "hf_bert"
    return "lavender"


# Each mapper: (file state_dict, model keys) -> (state_dict in model names, ignored file keys, notes,


def _head(key):
    """The head a model key belongs to (`fc`, `fc_mtm`, `fc_{type}_{task}`, `emb_task`), or None: the parts
    that differ between LAVENDER model types."""
    first = key.split(".")[0]
    return first if first.startswith("fc") or first == "emb_task" else None


def _map_lavender(sd, model_keys):
    out, ignored = {}, []
    model_heads = {_head(m) for m in model_keys} - {None}
    for k, v in sd.items():
        head = _head(k)
        if head and head not in model_heads:
            ignored.append(k)  # the head of another model type (e.g. pretraining's MLM head in a task-specific model)
        else:
            out[k] = v
    expected = {h + ".": "task-specific head, new for this task (kept as initialised, as the original)"
                for h in model_heads - {"fc_mtm", "emb_task"}}
    expected["emb_task"] = "task-token table, not in VIOLET-style files (kept as initialised)"
    return out, ignored, [], expected


def _map_video_swin(sd, model_keys):
    out, ignored = {}, []
    for k, v in sd.items():
        k = k[len("backbone."):] if k.startswith("backbone.") else k
        # Classifier heads of Kinetics/ImageNet checkpoints and 2D Swin's cached masks are not ours.
        if k.startswith(("cls_head.", "head.")) or k.endswith(".attn_mask"):
            ignored.append(k)
        else:
            out["enc_img.swin." + k] = v
    return out, ignored, [], {}


def _map_hf_bert(sd, model_keys):
    out, ignored = {}, []
    has_head = any(k.startswith("fc_mtm.") for k in model_keys)
    # txt_backbone_embed_only false: the text's own encoder is the BERT encoder too (EncTxt.txt_trsfr)
    txt_encoder = any(k.startswith(TXT_ENCODER) for k in model_keys)
    for k, v in sd.items():
        k2 = re.sub(r"\.gamma$", ".weight", re.sub(r"\.beta$", ".bias", k))  # pre-2019 LayerNorm names
        base = k2[len("bert."):] if k2.startswith("bert.") else k2
        if base.endswith(("position_ids", "token_type_ids")) or base.startswith(("pooler.", "cls.seq_relationship.")):
            ignored.append(k)
        elif base.startswith("embeddings."):
            out["enc_txt.emb_txt." + base[len("embeddings."):]] = v
        elif base.startswith("encoder."):
            out["trsfr." + base[len("encoder."):]] = v
            if txt_encoder:
                out[TXT_ENCODER + base[len("encoder."):]] = v
        elif base.startswith("cls.predictions."):
            if has_head:
                out["fc_mtm.predictions." + base[len("cls.predictions."):]] = v
            else:
                ignored.append(k)
        else:
            out[k] = v  # reported as unexpected
    dec, word = "fc_mtm.predictions.decoder.weight", "enc_txt.emb_txt.word_embeddings.weight"
    notes, expected = [], {}
    file_head = any(k.startswith("fc_mtm.") for k in out)
    if has_head and dec not in out and word in out:
        # BertForMaskedLM saves its tied decoder only once, as the word embeddings; a BertModel (no MLM
        # head) gets the decoder that Hugging Face would tie to them too.
        out[dec] = out[word].clone()
        notes.append(f"{dec} <- word embeddings ({'tied in the file' if file_head else 'no MLM head in the file'})")
    if has_head and not file_head:
        expected["fc_mtm."] = "the BERT file has no MLM head (a BertModel): kept as initialised"
    return out, ignored, notes, expected


# load_SwinBERT_weight's renames (prefix -> prefix); every other key of a SwinBERT checkpoint is dropped.
SWINBERT_RENAMES = (("swin.backbone.", "enc_img.swin."), ("trans_encoder.bert.encoder.", "trsfr."),
                    ("trans_encoder.bert.embeddings.", "enc_txt.emb_txt."), ("fc.", "enc_img.fc."),
                    ("trans_encoder.bert.img_embedding.", "enc_img.img_embedding."),
                    ("trans_encoder.cls.", "fc_mtm."))


def _map_swinbert(sd, model_keys):
    out, ignored, counts = {}, [], {}
    for k, v in sd.items():
        rule = next(((a, b) for a, b in SWINBERT_RENAMES if k.startswith(a)), None)
        if rule is None:
            ignored.append(k)  # e.g. learn_vid_att, the pooler, Swin's Kinetics head (the original drops them)
            continue
        out[rule[1] + k[len(rule[0]):]] = v
        counts[rule] = counts.get(rule, 0) + 1
    notes = [f"{a}* -> {b}* ({n} keys)" for (a, b), n in counts.items()]
    bias = "fc_mtm.predictions.bias"
    if bias in out:  # as the original: the decoder bias is the prediction bias
        out["fc_mtm.predictions.decoder.bias"] = out[bias]
        notes.append("fc_mtm.predictions.decoder.bias <- fc_mtm.predictions.bias")
    if "enc_img.img_embedding.weight" in out and "enc_img.img_embedding.weight" not in model_keys:
        notes.append("this SwinBERT checkpoint needs the SwinBERT visual projection (enc_img.fc to 512, "
                     "enc_img.img_embedding): build the model with swinbert true")
    return out, ignored, notes, {}


MAPPERS = {"lavender": _map_lavender, "video_swin": _map_video_swin, "hf_bert": _map_hf_bert,
           "swinbert": _map_swinbert}

