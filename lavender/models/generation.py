"""Caption decoding with the MLM head (docs/original.md#caption-decoding): greedy, sampling and beam search.

The original decodes by masked-token prediction: text starts as ``[CLS]``; each step appends ``[MASK]``,
runs the fusion encoder over ``[visual ; pretext ; text]`` with the seq2seq mask and takes the MLM
logits at the ``[MASK]``. The visual features are computed once per video. Decoding stops when every
sequence has emitted ``[SEP]`` or at ``max_gen_length`` tokens (the leading ``[CLS]`` included); a
sequence cut by the limit has its last position overwritten with ``[SEP]``. Finished sequences are
padded with ``[PAD]``; a sequence's score is its mean log-probability over the steps it generated
(the ``[SEP]`` step included), computed from the processed logits (repetition penalty, temperature,
top-k/top-p) as the original does.

Cache. Under the seq2seq mask visual/pretext rows never attend to text and text is causal, so the hidden
states of the prefix and of the already decoded tokens never change between steps. ``use_cache=True``
keeps every layer's keys/values of those positions and computes only the new ones (the latest token and
the ``[MASK]``), running the fusion encoder's own BERT layer weights. ``use_cache=False`` is the
original's step: a full fusion forward per step (the reference the tests compare against).

Beam search (``num_beams`` > 1; the original accepted the key but decoded greedily). Each video keeps
``num_beams`` hypotheses; finished ones stay in the beam with a ``[PAD]`` continuation and unchanged
score. Hypotheses - partial and finished alike - are ranked by their length-normalised score
``sum log p / n_steps ** length_penalty`` (1.0: the mean log-prob, the greedy score), so finished short
captions do not crowd out longer ones just because their sums stop decreasing. At the length limit a
hypothesis keeps only its best continuation (which then becomes ``[SEP]``, the greedy rule), so
``num_beams`` 1 is exactly greedy decoding.
"""
from dataclasses import dataclass
from typing import NamedTuple, Optional

import torch
import torch.nn.functional as F

from ..config import DEFAULTS
from ..errors import ConfigError

__all__ = ["GenerationConfig", "GenerationOutput", "generate", "decode_captions"]


@dataclass
class GenerationConfig:
    """Decoding settings; :meth:`from_config` reads the original's config keys."""
    max_gen_length: int = 20       # tokens incl. the leading [CLS]
    num_beams: int = 1
    do_sample: bool = False
    temperature: float = 1.0       # config key gen_temperature (sampling only)
    top_k: int = 0                 # sampling only; 0 = off
    top_p: float = 1.0             # sampling only; 1 = off
    repetition_penalty: float = 1.0  # CTRL: logits of tokens already in the sequence /p (>0) or *p (<0)
    length_penalty: float = 1.0    # beam ranking: sum log p / n_steps ** length_penalty (not a config key)

    def __post_init__(self):
        self.validate()

    def validate(self):
        if int(self.max_gen_length) < 2:
            raise ConfigError(f"max_gen_length must be >= 2 ([CLS] + one token), got {self.max_gen_length}")
        if int(self.num_beams) < 1:
            raise ConfigError(f"num_beams must be >= 1, got {self.num_beams}")
        if self.do_sample and self.num_beams > 1:
            raise ConfigError("do_sample with num_beams > 1 (beam sampling) is not implemented: "
                              "use do_sample with num_beams 1, or beam search without do_sample")
        if not self.do_sample:
            unused = [f"{k} {v}" for k, v, off in (("gen_temperature", self.temperature, 1.0),
                                                    ("top_k", self.top_k, 0), ("top_p", self.top_p, 1.0))
                      if v != off]
            if unused:
                raise ConfigError(f"{', '.join(unused)} only apply when sampling: set do_sample true "
                                  f"or leave them at their defaults (gen_temperature 1, top_k 0, top_p 1)")
        if self.temperature <= 0 or self.top_k < 0 or not 0 < self.top_p <= 1 or self.repetition_penalty <= 0:
            raise ConfigError("need gen_temperature > 0, top_k >= 0, 0 < top_p <= 1 and repetition_penalty > 0 "
                              f"(got {self.temperature}, {self.top_k}, {self.top_p}, {self.repetition_penalty})")

    @classmethod
    def from_config(cls, cfg, size_txt=None):
        """From a run config (or a dict of some of its keys: the declared defaults for the others). With
        ``size_txt`` (the captions' text length S), ``max_gen_length`` must fit in it: the model is trained on
        S text positions (the original slices its decoding mask from the S-long text block and requires the same)."""
        s = {**DEFAULTS, **dict(cfg)}
        out = cls(max_gen_length=int(s["max_gen_length"]), num_beams=int(s["num_beams"]),
                  do_sample=bool(s["do_sample"]), temperature=float(s["gen_temperature"]), top_k=int(s["top_k"]), top_p=float(s["top_p"]),
                  repetition_penalty=float(s["repetition_penalty"]))
        if size_txt is not None and out.max_gen_length > int(size_txt):
                raise ConfigError(f"max_gen_length {out.max_gen_length} exceeds size_txt {size_txt}: the caption "
                              "model is trained on size_txt text positions")
        return out


class GenerationOutput(NamedTuple):
    ids: torch.Tensor     # (B, max_gen_length) int64: [CLS] tokens [SEP] [PAD]...
    scores: torch.Tensor  # (B,) float32: mean log-prob over generated steps (conf = exp(score))


def decode_captions(tokenizer, ids):
    """Caption strings from generated ids (special tokens dropped, as the original)."""
    return [tokenizer.decode(row.tolist() if torch.is_tensor(row) else row, skip_special_tokens=True)
            for row in ids]


# ----------------------------------------------------------------------------- steppers
class _NaiveStepper:
    """The original's step: the whole [visual ; pretext ; text + MASK] through the fusion encoder."""

    def __init__(self, model, feat, mask, pretext, mask_id):
        self.model, self.feat, self.mask, self.pre, self.mask_id = model, feat, mask, pretext, mask_id

    def logits(self, ids):
        txt = torch.cat([ids, torch.full_like(ids[:, :1], self.mask_id)], 1)
        hidden = self.model.fuse(self.feat, self.mask, self.model.embed_text(txt, causal=True), torch.ones_like(txt),
                                 pretext=self.pre, attn="seq2seq")
        return self.model.mlm(hidden[:, -1])  # the [MASK] is the last text position

    def reorder(self, rows):
        self.feat, self.mask = self.feat[rows], self.mask[rows]
        if self.pre is not None:
            self.pre = (self.pre[0][rows], self.pre[1][rows])


def _layer(layer, h, keys, values, mask):
    """One BERT layer for the query rows `h` (N, n, H) attending to cached `keys`/`values` (N, nh, L, d)
    plus their own; `mask` (N, 1, n, L + n) bool (True = may attend). Returns (out, k, v) of the rows."""
    att = layer.attention.self
    N, n, _ = h.shape
    nh, d = att.num_attention_heads, att.attention_head_size

    def heads(x):
        return x.view(N, n, nh, d).transpose(1, 2)
    q, k, v = heads(att.query(h)), heads(att.key(h)), heads(att.value(h))
    o = F.scaled_dot_product_attention(q, torch.cat([keys, k], 2), torch.cat([values, v], 2), attn_mask=mask,
                                       scale=d ** -0.5)
    a = layer.attention.output(o.transpose(1, 2).reshape(N, n, nh * d), h)  # dense, dropout, LayerNorm(+h)
    return layer.output(layer.intermediate(a), a), k, v


class _CachedStepper:
    """Per-layer key/value cache of the prefix and of the decoded tokens; each step runs only the newest
    token and the [MASK] through the encoder layers."""

    def __init__(self, model, feat, mask, pretext, mask_id):
        self.model, self.mask_id = model, mask_id
        self.layers = list(model.trsfr.layer)
        if pretext is not None:
            feat = torch.cat([feat, pretext[0].to(feat.dtype)], 1)
            mask = torch.cat([mask, pretext[1].to(mask.dtype)], 1)
        self.prefix_mask = mask.bool()  # (N, Lp)
        N, Lp = self.prefix_mask.shape
        # The prefix alone: every prefix row sees the unmasked prefix columns (it never sees text).
        m = self.prefix_mask[:, None, None, :].expand(N, 1, Lp, Lp)
        empty = feat.new_zeros(N, self.layers[0].attention.self.num_attention_heads, 0,
                               self.layers[0].attention.self.attention_head_size)
        self.keys, self.values = [], []  # per layer: (N, nh, Lp + decoded, d)
        h = feat
        for layer in self.layers:
            h, k, v = _layer(layer, h, empty, empty, m)
            self.keys.append(k)
            self.values.append(v)
        self.n_text = 0  # decoded tokens whose keys/values are cached

    def logits(self, ids):
        txt = torch.cat([ids, torch.full_like(ids[:, :1], self.mask_id)], 1)
        h = self.model.embed_text(txt, causal=True)[:, self.n_text:]  # absolute positions: slice after embedding
        N, n = h.shape[:2]
        L = self.keys[0].shape[2]
        # cached prefix: its 1-D mask; cached text: all visible (earlier); the new rows: causal
        cached = torch.cat([self.prefix_mask, self.prefix_mask.new_ones(N, L - self.prefix_mask.shape[1])], 1)
        causal = torch.ones(n, n, dtype=torch.bool, device=h.device).tril()
        mask = torch.cat([cached[:, None, None, :].expand(N, 1, n, L), causal.expand(N, 1, n, n)], 3)
        for i, layer in enumerate(self.layers):
            h, k, v = _layer(layer, h, self.keys[i], self.values[i], mask)
            # keep the real tokens' keys/values; the [MASK] (last row) is replaced next step
            self.keys[i] = torch.cat([self.keys[i], k[:, :, :-1]], 2)
            self.values[i] = torch.cat([self.values[i], v[:, :, :-1]], 2)
        self.n_text = ids.shape[1]
        return self.model.mlm(h[:, -1])

    def reorder(self, rows):
        self.prefix_mask = self.prefix_mask[rows]
        self.keys = [k[rows] for k in self.keys]
        self.values = [v[rows] for v in self.values]


# ----------------------------------------------------------------------------- logits processing
def _repetition_penalty(logits, ids, penalty):
    """CTRL (as the original): for every token already in the sequence, logit / p if > 0 else * p."""
    if penalty == 1.0:
        return logits
    seen = logits.gather(1, ids)
    return logits.scatter(1, ids, torch.where(seen < 0, seen * penalty, seen / penalty))


def _top_k_top_p(logits, top_k, top_p):
    """Keep the top-k logits and the smallest set whose probability reaches top_p (at least one)."""
    if top_k > 0:
        kth = logits.topk(min(top_k, logits.shape[-1]), dim=-1).values[:, -1:]
        logits = logits.masked_fill(logits < kth, float("-inf"))
    if top_p < 1.0:
        srt, idx = logits.sort(dim=-1, descending=True)
        cum = srt.softmax(-1).cumsum(-1)
        drop = cum > top_p
        drop[:, 1:] = drop[:, :-1].clone()  # keep the token that crosses the threshold
        drop[:, 0] = False
        logits = logits.masked_fill(drop.scatter(1, idx, drop), float("-inf"))
    return logits


# ----------------------------------------------------------------------------- decoding loops
def _greedy(stepper, B, device, s, special, generator):
    """The original's greedy / sampling loop."""
    cls, sep, pad = special["cls"], special["sep"], special["pad"]
    ids = torch.full((B, 1), cls, dtype=torch.long, device=device)
    unfinished = torch.ones(B, dtype=torch.bool, device=device)
    sum_lp = torch.zeros(B, dtype=torch.float32, device=device)
    n_steps = torch.zeros(B, dtype=torch.float32, device=device)
    while ids.shape[1] < s.max_gen_length:
        logits = _repetition_penalty(stepper.logits(ids).float(), ids, s.repetition_penalty)
        if s.do_sample:
            logits = _top_k_top_p(logits / s.temperature, s.top_k, s.top_p)
            tok = torch.multinomial(logits.softmax(-1), 1, generator=generator).squeeze(1)
        else:
            tok = logits.argmax(-1)
        lp = logits.log_softmax(-1).gather(1, tok[:, None]).squeeze(1)
        sum_lp += torch.where(unfinished, lp, torch.zeros_like(lp))
        n_steps += unfinished.float()
        tok = torch.where(unfinished, tok, torch.full_like(tok, pad))
        ids = torch.cat([ids, tok[:, None]], 1)
        unfinished &= tok != sep
        if not unfinished.any():
            break
    if ids.shape[1] == s.max_gen_length:
        ids[unfinished, -1] = sep
    return ids, sum_lp / n_steps


def _beam(stepper, B, device, s, special):
    """Beam search with length-normalised ranking (module doc)."""
    cls, sep, pad = special["cls"], special["sep"], special["pad"]
    K = s.num_beams
    N = B * K
    ids = torch.full((N, 1), cls, dtype=torch.long, device=device)
    sum_lp = torch.full((B, K), float("-inf"), device=device)
    sum_lp[:, 0] = 0.0  # all beams start identical: expand only the first
    sum_lp = sum_lp.view(N)
    n_steps = torch.zeros(N, device=device)
    finished = torch.zeros(N, dtype=torch.bool, device=device)
    base = (torch.arange(B, device=device) * K)[:, None]
    while ids.shape[1] < s.max_gen_length:
        last = ids.shape[1] == s.max_gen_length - 1
        lp = _repetition_penalty(stepper.logits(ids).float(), ids, s.repetition_penalty).log_softmax(-1)
        V = lp.shape[1]
        if last:  # a cut hypothesis becomes [SEP] anyway: only its best continuation matters
            lp = torch.full_like(lp, float("-inf")).scatter(1, lp.argmax(-1, keepdim=True), lp.max(-1, True).values)
        cand = sum_lp[:, None] + lp
        cand[finished] = float("-inf")
        cand[finished, pad] = sum_lp[finished]  # finished: one [PAD] continuation, score unchanged
        steps = n_steps + (~finished).float()
        key = cand / steps.clamp(min=1)[:, None] ** s.length_penalty
        top = key.view(B, K * V).topk(K, dim=1).indices  # (B, K)
        rows = (base + top // V).view(N)
        tok = (top % V).view(N)
        sum_lp = cand.view(B, K * V).gather(1, top).view(N)
        n_steps = steps[rows]
        finished = finished[rows] | (tok == sep) | torch.isinf(sum_lp)  # -inf: a beam that never started
        ids = torch.cat([ids[rows], tok[:, None]], 1)
        stepper.reorder(rows)
        if last:
            ids[~finished, -1] = sep
            finished[:] = True
        if finished.all():
            break
    key = (sum_lp / n_steps.clamp(min=1) ** s.length_penalty).view(B, K)
    best = (base[:, 0] + key.argmax(1))
    return ids[best], (sum_lp / n_steps.clamp(min=1))[best]


@torch.no_grad()
def generate(model, img=None, special=None, settings: Optional[GenerationConfig] = None, *, pretext=None,
             features=None, generator: Optional[torch.Generator] = None, use_cache: bool = True) -> GenerationOutput:
    """Decode one caption per video.

    Args:
        model: a :class:`~lavender.models.Lavender` with the MLM head, in eval mode.
        img: (B, T, 3, H, W) normalised frames, or None when ``features`` is given.
        special: token ids ``{"cls", "sep", "pad", "mask"}`` (``lavender.tokenizer.special_ids``).
        settings: :class:`GenerationConfig` (default: greedy, 20 tokens).
        pretext: ``model.pretext(B, ...)`` (task token or prompt), part of the fully visible prefix.
        features: precomputed ``model.encode_video(img)`` as (feat, mask).
        generator: torch.Generator for sampling (reproducible draws).
        use_cache: key/value cache (default) or the original's full forward per step.
    """
    s = settings or GenerationConfig()
    if model.training:
        raise RuntimeError("generate() needs model.eval(): dropout would make the decoded tokens random")
    n_pos = model.enc_txt.emb_txt.position_embeddings.num_embeddings
    if s.max_gen_length > n_pos:
        raise ValueError(f"max_gen_length {s.max_gen_length} exceeds the {n_pos} text positions of the model "
                         "(bert_config max_position_embeddings)")
    missing = [k for k in ("cls", "sep", "pad", "mask") if k not in (special or {})]
    if missing:
        raise ValueError(f"special token ids missing: {missing} (pass lavender.tokenizer.special_ids(tokenizer))")
    feat, mask = features if features is not None else model.encode_video(img)
    B = feat.shape[0]
    if s.num_beams > 1:  # one row per hypothesis
        feat, mask = feat.repeat_interleave(s.num_beams, 0), mask.repeat_interleave(s.num_beams, 0)
        if pretext is not None:
            pretext = tuple(x.repeat_interleave(s.num_beams, 0) for x in pretext)
    stepper = (_CachedStepper if use_cache else _NaiveStepper)(model, feat, mask, pretext, special["mask"])
    if s.num_beams > 1:
        ids, scores = _beam(stepper, B, feat.device, s, special)
    else:
        ids, scores = _greedy(stepper, B, feat.device, s, special, generator)
    if ids.shape[1] < s.max_gen_length:  # right-pad to a fixed width, as the original
        ids = torch.cat([ids, ids.new_full((B, s.max_gen_length - ids.shape[1]), special["pad"])], 1)
    return GenerationOutput(ids, scores)
