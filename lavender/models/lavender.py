"""The LAVENDER model: Video Swin visual tokens + BERT text embeddings -> BERT fusion encoder -> MLM head.

State-dict keys are exactly those of the original (``emb_task``, ``enc_txt.emb_txt.*``, ``trsfr.*``,
``enc_img.*``, ``fc_mtm.predictions.*``), so original checkpoints load unchanged. The model knows
tensors only: tokenisation, labels, losses and scoring live in the task code.
"""
from dataclasses import asdict, dataclass, field

import torch
import torch.nn.functional as F
from torch import nn
from transformers import BertConfig
from transformers.models.bert.modeling_bert import BertEmbeddings, BertEncoder, BertOnlyMLMHead

from ..config import choices_of
from .dropout import FUSION_SDPA, Dropout, use_fast_dropout
from .video_swin import SwinConfig, SwinTransformer3D

# rows of emb_task: the task_token names in their declared order (vtm, mc, oe, cap, as the original)
TASK_TOK2ID = {name: i for i, name in enumerate(choices_of("task_token"))}
N_TASK_TOKENS = 10
SWINBERT_IMG_DIM = 512  # SwinBERT's img_feature_dim: its fc maps Swin features to 512, img_embedding to hidden

# BertConfig fields a model needs; everything else in a config.json is irrelevant here.
BERT_FIELDS = ("vocab_size", "hidden_size", "num_hidden_layers", "num_attention_heads", "intermediate_size",
                "hidden_act", "hidden_dropout_prob", "attention_probs_dropout_prob", "max_position_embeddings",
                "type_vocab_size", "initializer_range", "layer_norm_eps", "pad_token_id")


def default_bert():
    c = BertConfig()  # transformers' defaults are the bert-base-uncased values
    return {k: getattr(c, k) for k in BERT_FIELDS}


@dataclass
class ModelConfig:
    """Everything that decides the model's shapes (serialisable with :func:`dataclasses.asdict`)."""
    swin: SwinConfig = field(default_factory=lambda: SwinConfig.from_size("base"))
    bert: dict = field(default_factory=default_bert)
    max_size_frame: int = 6
    max_size_patch: int = 14
    head: str = "mlm"              # "mlm" or "task_specific" (one head `fc` of head_size outputs)
    head_size: int = 1             # K outputs of the task-specific head
    heads: dict = None             # {name: K} MLP heads, None for the MLM head fc_mtm; overrides head/head_size
    n_task_tokens: int = N_TASK_TOKENS
    attn_implementation: str = "sdpa"  # fusion encoder attention: "sdpa" or "eager"
    swinbert: bool = False         # SwinBERT-compatible visual projection (EncVideo)
    txt_encoder: bool = False      # text through its own BERT encoder before fusion (txt_backbone_embed_only
                                   # false, docs/original.md#text-embeddings): enc_txt.txt_trsfr

    def __post_init__(self):
        if self.heads is None:
            if self.head not in ("mlm", "task_specific"):
                raise ValueError(f"head must be 'mlm' or 'task_specific', got {self.head!r}")
            self.heads = {"fc_mtm": None} if self.head == "mlm" else {"fc": self.head_size}
        bad = [n for n, k in self.heads.items() if (k is None) != (n == "fc_mtm") or not n.startswith("fc")]
        if bad:
            raise ValueError(f"heads {bad}: 'fc_mtm' is the MLM head (None); other heads are named fc* with a size")

    def bert_config(self):
        cfg = BertConfig(**self.bert)
        cfg._attn_implementation = _bert_attn(self.attn_implementation)
        return cfg

    def to_dict(self):
        return asdict(self)

    @classmethod
    def from_dict(cls, d):
        d = dict(d)
        swin = d.pop("swin", None)
        if isinstance(swin, dict):
            swin = SwinConfig(**{k: tuple(v) if isinstance(v, list) else v for k, v in swin.items()})
        return cls(swin=swin or SwinConfig.from_size("base"), **d)


def _bert_attn(name):
    """transformers' attention name for ours: "sdpa" is SDPA with the fast CPU dropout (models/dropout.py)."""
    if name not in ("sdpa", "eager"):
        raise ValueError(f"attn_implementation must be 'sdpa' or 'eager', got {name!r}")
    return FUSION_SDPA if name == "sdpa" else name


ENCODERS = ("enc_img", "trsfr")  # what `compile_encoders` compiles: the video and fusion encoders


def compile_encoders(model, enable=True, **compile_kw):
    """``torch.compile`` the video encoder and the fusion encoder of ``model`` in place.

    In place (``nn.Module.compile``) keeps the state-dict keys unchanged. ``compile_kw`` go to
    ``torch.compile`` (e.g. ``backend="aot_eager"``). ``enable=False`` runs them eagerly again; compiling
    again later reuses the code already compiled for the same shapes.
    """
    for name in ENCODERS:
        module = getattr(model, name)
        if enable:
            module.compile(**compile_kw)
        else:
            module._compiled_call_impl = None  # what nn.Module.compile sets; None is the eager call
    return model


class EncVideo(nn.Module):
    """Video Swin features -> per-frame [CLS] + patches, plus position/frame embeddings and LayerNorm.

    ``swinbert=True`` is the SwinBERT-compatible projection instead
    (docs/original.md#visual-tokens-and-the-swinbert-projection): ``fc`` (Swin width -> 512)
    then ``img_embedding`` (512 -> hidden), a zero "fake CLS" token with mask 0 per frame, and no
    position/frame embeddings or LayerNorm (so a SwinBERT checkpoint fills every visual parameter).
    """

    def __init__(self, swin_cfg: SwinConfig, hidden, max_size_frame=6, max_size_patch=14, swinbert=False):
        super().__init__()
        self.max_size_frame, self.max_size_patch = max_size_frame, max_size_patch
        self.swinbert = swinbert
        if not swinbert:
            self.emb_cls = nn.Parameter(0.02 * torch.randn(1, 1, 1, hidden))
            self.emb_pos = nn.Parameter(0.02 * torch.randn(1, 1, 1 + max_size_patch ** 2, hidden))
            self.emb_len = nn.Parameter(0.02 * torch.randn(1, max_size_frame, 1, hidden))
            self.emb_odr = nn.Parameter(0.02 * torch.randn(1, 1, 1, hidden))
        self.swin = SwinTransformer3D(swin_cfg)
        dim = self.swin.num_features
        if swinbert:
            self.fc = nn.Linear(dim, SWINBERT_IMG_DIM)
            self.img_embedding = nn.Linear(SWINBERT_IMG_DIM, hidden)
            return
        # The original creates the projection only when the widths differ.
        self.fc = nn.Linear(dim, hidden) if dim != hidden else None
        self.norm = nn.LayerNorm(hidden)

    def forward(self, img, odr=None):
        """img (B, T, 3, H, W) -> tokens (B, T*(1+h*w), hidden), mask (B, T*(1+h*w)) (int64; ones, or 0 at
        the fake CLS of each frame in swinbert mode)."""
        B, T = img.shape[:2]
        f = self.swin(img.transpose(1, 2))  # (B, C, T, h, w)
        _, C, _, h, w = f.shape
        n = 1 + h * w
        f = f.permute(0, 2, 3, 4, 1).reshape(B, T, h * w, C)
        if self.swinbert:
            if odr is not None:
                raise ValueError("the SwinBERT-compatible visual projection has no frame-order embedding (odr)")
            f = self.img_embedding(self.fc(f))
            f = torch.cat([f.new_zeros(B, T, 1, f.shape[-1]), f], dim=2).reshape(B, T * n, -1)
            mask = torch.ones(B, T, n, dtype=torch.long, device=f.device)
            mask[:, :, 0] = 0
            return f, mask.reshape(B, T * n)
        if T > self.emb_len.shape[1] or n > self.emb_pos.shape[2]:
            raise ValueError(f"{T} frames x {h}x{w} patches exceed the embedding tables "
                             f"(max_size_frame {self.emb_len.shape[1]}, {self.emb_pos.shape[2]} positions)")
        if self.fc is not None:
            f = self.fc(f)
        f = torch.cat([self.emb_cls.expand(B, T, 1, -1).to(f.dtype), f], dim=2)
        f = f + self.emb_pos[:, :, :n] + self.emb_len[:, :T]
        if odr is not None:  # frame-order embedding, scaled per frame (pretraining only)
            f = f + self.emb_odr * odr.view(B, T, 1, 1).to(f.dtype)
        f = self.norm(f).reshape(B, T * n, -1)
        return f, torch.ones(B, T * n, dtype=torch.long, device=f.device)


class EncTxt(nn.Module):
    """BERT embeddings (``emb_txt``); with ``encoder`` (txt_backbone_embed_only false) also the text's own
    BERT encoder ``txt_trsfr``, over the text alone with its padding mask (causal for seq2seq use)."""

    def __init__(self, bert_cfg, encoder=False):
        super().__init__()
        self.emb_txt = BertEmbeddings(bert_cfg)
        self.txt_trsfr = BertEncoder(bert_cfg) if encoder else None

    def forward(self, txt, mask=None, causal=False):
        f = self.emb_txt(input_ids=txt)
        if self.txt_trsfr is None:
            return f
        mask = torch.ones_like(txt) if mask is None else mask
        if causal:
            keep = torch.tril(torch.ones(txt.shape[1], txt.shape[1], dtype=torch.bool, device=txt.device))[None, None]
        else:
            keep = mask.bool()[:, None, None, :]
        ext = (1.0 - keep.to(f.dtype)) * torch.finfo(f.dtype).min
        return self.txt_trsfr(f, attention_mask=ext).last_hidden_state


class Lavender(nn.Module):
    """LAVENDER with the heads of ``cfg.heads``: the MLM head ``fc_mtm`` (the unified model; it comes with
    the task-token table ``emb_task``) and/or baseline MLP heads on the first text token (``fc``,
    and per-task ``fc_{type}_{task}`` in the multi-head baseline)."""

    def __init__(self, cfg: ModelConfig = None):
        super().__init__()
        cfg = cfg or ModelConfig()
        self.cfg = cfg
        self.bert_config = bc = cfg.bert_config()
        H = bc.hidden_size
        self.hidden_size = H
        self.task_tok2id = dict(TASK_TOK2ID)
        if self.has_mlm:
            self.emb_task = nn.Parameter(0.02 * torch.randn(cfg.n_task_tokens, H))
        self.enc_txt = EncTxt(bc, cfg.txt_encoder)
        self.trsfr = BertEncoder(bc)
        self.enc_img = EncVideo(cfg.swin, H, cfg.max_size_frame, cfg.max_size_patch, cfg.swinbert)
        for m in (self.enc_txt, self.trsfr):
            m.apply(self._init_bert)
        self.reinit_heads()
        if self.has_mlm:
            self.fc_mtm = BertOnlyMLMHead(bc)
            self.fc_mtm.apply(self._init_bert)
            nn.init.zeros_(self.fc_mtm.predictions.bias)
            # As in the original (and transformers 4.x), the decoder bias IS predictions.bias.
            self.fc_mtm.predictions.decoder.bias = self.fc_mtm.predictions.bias
        use_fast_dropout(self)  # transformers' modules build nn.Dropout

    def _init_bert(self, m):
        std = self.bert_config.initializer_range
        if isinstance(m, nn.Linear):
            nn.init.normal_(m.weight, std=std)
            if m.bias is not None:
                nn.init.zeros_(m.bias)
        elif isinstance(m, nn.Embedding):
            nn.init.normal_(m.weight, std=std)
            if m.padding_idx is not None:
                with torch.no_grad():
                    m.weight[m.padding_idx].zero_()
        elif isinstance(m, nn.LayerNorm):
            nn.init.ones_(m.weight)
            nn.init.zeros_(m.bias)

    def reinit_heads(self):
        """(Re-)create the task-specific MLP heads (``fc``, ``fc_{type}_{task}``) with their configured sizes
        and fresh weights; returns their names. The MLM head is not one of them."""
        H = self.hidden_size
        names = [n for n, k in self.cfg.heads.items() if k is not None]
        for name in names:
            k = self.cfg.heads[name]
            setattr(self, name, nn.Sequential(Dropout(0.1), nn.Linear(H, 2 * H), nn.ReLU(), nn.Linear(2 * H, k)))
        return names

    @property
    def has_mlm(self):
        return "fc_mtm" in self.cfg.heads

    def set_attn_implementation(self, name):
        """Switch the fusion encoder between "sdpa" and "eager" attention."""
        self.bert_config._attn_implementation = _bert_attn(name)
        self.cfg.attn_implementation = name

    def encode_video(self, img, odr=None):
        """(B, T, 3, H, W) normalised frames -> (feat [B, Lv, H], mask [B, Lv] int64 ones)."""
        return self.enc_img(img, odr)

    def embed_text(self, txt, mask=None, causal=False):
        """(B, L) ids -> (B, L, H): word + position 0..L-1 + token type 0, LayerNorm, dropout; then, with a
        text encoder (txt_backbone_embed_only false), that encoder over the text (`mask`: its padding;
        `causal`: each position sees only earlier ones, for seq2seq use)."""
        return self.enc_txt(txt, mask, causal)

    def pretext(self, batch_size, task_token=None, prompt_ids=None, prompt_mask=None):
        """Features and mask prepended to the text: one task-token row or an embedded prompt; None if neither."""
        if task_token is not None and prompt_ids is not None:
            raise ValueError("pass either task_token or prompt_ids, not both")
        if task_token is not None:
            if not self.has_mlm:
                raise ValueError("this model has no task tokens (no MLM head)")
            if isinstance(task_token, str) and task_token not in self.task_tok2id:
                raise ValueError(f"unknown task token {task_token!r}: the table has {list(self.task_tok2id)}")
            idx = self.task_tok2id[task_token] if isinstance(task_token, str) else int(task_token)
            # Raw row: no LayerNorm, no position embedding (as the original).
            feat = self.emb_task[idx].view(1, 1, -1).expand(batch_size, 1, -1)
            return feat, torch.ones(batch_size, 1, dtype=torch.long, device=feat.device)
        if prompt_ids is not None:
            ids = prompt_ids if prompt_ids.dim() == 2 else prompt_ids.unsqueeze(0)
            mask = torch.ones_like(ids) if prompt_mask is None else (
                prompt_mask if prompt_mask.dim() == 2 else prompt_mask.unsqueeze(0))
            feat = self.embed_text(ids, mask)  # own positions 0..Lp-1
            return feat.expand(batch_size, -1, -1), mask.to(torch.long).expand(batch_size, -1)
        return None

    @staticmethod
    def attention_mask(mask_prefix, mask_txt, attn="full", dtype=torch.float32):
        """Additive mask for the fusion encoder: (B,1,1,L) for "full", (B,1,L,L) for "seq2seq".

        seq2seq: visual+pretext key columns are visible to every row; text attends causally to text;
        visual/pretext rows never see text.
        """
        if attn == "full":
            mask = torch.cat([mask_prefix, mask_txt], 1)[:, None, None, :]
        elif attn == "seq2seq":
            B, Lp = mask_prefix.shape
            Lt = mask_txt.shape[1]
            L = Lp + Lt
            mask = torch.zeros(B, L, L, dtype=torch.long, device=mask_txt.device)
            mask[:, :, :Lp] = mask_prefix[:, None, :]
            mask[:, Lp:, Lp:] = torch.tril(torch.ones(Lt, Lt, dtype=torch.long, device=mask_txt.device))
            mask = mask[:, None]
        else:
            raise ValueError(f"attn must be 'full' or 'seq2seq', got {attn!r}")
        return (1.0 - mask.to(dtype)) * torch.finfo(dtype).min

    def fuse(self, feat_img, mask_img, feat_txt, mask_txt, pretext=None, attn="full", return_all=False):
        """Fusion encoder over [visual; pretext; text]; returns the text part (pretext included) [B, Lp+Lt, H].

        ``return_all`` returns the whole sequence instead (visual part too). With "seq2seq" the pretext
        belongs to the fully visible prefix (the original passes it as ``mask_pretxt``,
        docs/original.md#attention-masks-full-and-seq2seq).
        """
        mask_prefix = mask_img.to(mask_txt.dtype)
        if pretext is not None:
            pre_mask = pretext[1].to(mask_txt.dtype)
            feat_txt = torch.cat([pretext[0].to(feat_txt.dtype), feat_txt], 1)
            if attn == "seq2seq":
                mask_prefix = torch.cat([mask_prefix, pre_mask], 1)
            else:
                mask_txt = torch.cat([pre_mask, mask_txt], 1)
        feat = torch.cat([feat_img.to(feat_txt.dtype), feat_txt], 1)
        ext = self.attention_mask(mask_prefix, mask_txt, attn, feat.dtype)
        out = self.trsfr(feat, attention_mask=ext).last_hidden_state
        return out if return_all else out[:, feat_img.shape[1]:]

    def mlm(self, hidden, rows=None):
        """MLM logits [..., V] (fc_mtm, not tied to the word embeddings); with `rows` (vocabulary ids, e.g.
        true/false) only those logits [..., len(rows)]: the head's transform, then just those rows of the
        decoder (the vocabulary projection is the costliest part of the head)."""
        if rows is None:
            return self.fc_mtm(hidden)
        pred = self.fc_mtm.predictions
        return F.linear(pred.transform(hidden), pred.decoder.weight[rows], pred.bias[rows])

    def head(self, hidden, name="fc"):
        """A task-specific head on the first text-part token: [B, K]."""
        return getattr(self, name)(hidden[:, 0])

    def forward(self, img, txt, mask, task_token=None, prompt_ids=None, prompt_mask=None, odr=None):
        """MLM logits of the text part [B, Lp+Lt, V] (task-specific models: head output [B, K])."""
        feat_img, mask_img = self.encode_video(img, odr)
        pre = self.pretext(txt.shape[0], task_token, prompt_ids, prompt_mask)
        hidden = self.fuse(feat_img, mask_img, self.embed_text(txt, mask), mask, pretext=pre)
        return self.mlm(hidden) if self.has_mlm else self.head(hidden)
