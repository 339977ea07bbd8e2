"""Equivalence with the original on the paths tests/data/ref_A.pt does not cover (it holds evaluation-mode
QA and retrieval with embeddings-only text): the captioning seq2seq mask and its decoding step, the
multiple-choice text layouts and scores, the text's own encoder (txt_backbone_embed_only false), the
SwinBERT projection and key mapping, and one QA training step's gradients (dropout off).

Each reference below is written in this file from the original's definitions (docs/original.md), not taken
from the code under test; each check also runs once with the code under test perturbed, and must fail then
(as tests/models/test_reference.py does with perturbed weights)."""
import os

import pytest
import torch
import torch.nn.functional as F

from lavender.config import default_config, load_config
from lavender.models import load_weights
from lavender.models.factory import create_model
from lavender.models.generation import GenerationConfig, generate
from lavender.models.lavender import EncTxt, EncVideo, Lavender
from lavender.models.weights import layouts
from lavender.tasks import build_task
from lavender.tasks.modeling import ModelHelpers
from lavender.tasks.qa_mc import MCDigit, MCTrueFalse
from lavender.tasks.qa_oe import QAOpenEnded
from lavender.tokenizer import load_tokenizer
from tiny import DECODER_SPECIAL as SPECIAL, decoder_model as tiny_model, make_color_world, tiny_argv, \
    write_tiny_vocab
from tool_loader import load_tool

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
REF = os.path.join(ROOT, "tests", "data", "ref_A.pt")
TOL = 1e-5


# ----------------------------------------------------------------------------- the original's definitions
def extended(mask, dtype=torch.float32):
    """transformers' get_extended_attention_mask: (B, L) -> (B, 1, 1, L), (B, L, L) -> (B, 1, L, L); 0 -> dtype min."""
    m = mask[:, None, None, :] if mask.dim() == 2 else mask[:, None, :, :]
    return (1.0 - m.to(dtype)) * torch.finfo(dtype).min


def original_attn_mask(mask_img, mask_txt, attn_mask_type="full", mask_pretxt=None):
    """LAVENDER_Base.get_attn_mask: seq2seq = every row sees the visual (+ pretext) columns by their mask, text rows
    see earlier text (lower triangle, padding ignored), visual/pretext rows never see text."""
    full = mask_img if mask_pretxt is None else torch.cat([mask_img, mask_pretxt], 1)
    if attn_mask_type != "seq2seq":
        return torch.cat([full, mask_txt], 1)
    B, Lf, Lt = full.shape[0], full.shape[1], mask_txt.shape[1]
    mask = torch.zeros(B, Lf + Lt, Lf + Lt, dtype=torch.long)
    mask[:, :, :Lf] = full[:, None, :]
    mask[:, Lf:, Lf:] = torch.tril(torch.ones(Lt, Lt, dtype=torch.long))
    return mask


def original_enc_txt(model, txt, mask=None, attn_mask_type="full"):
    """EncTxt: BERT embeddings, then (txt_backbone_embed_only false) the text's encoder with the padding mask
    ("full") or the lower triangle ("seq2seq")."""
    f = model.enc_txt.emb_txt(input_ids=txt)
    if model.enc_txt.txt_trsfr is None:
        return f
    mask = torch.ones_like(txt) if mask is None else mask
    m = torch.tril(torch.ones(txt.shape[0], txt.shape[1], txt.shape[1], dtype=torch.long)) \
        if attn_mask_type == "seq2seq" else mask
    return model.enc_txt.txt_trsfr(f, attention_mask=extended(m, f.dtype)).last_hidden_state


def original_cross(model, feat_img, mask_img, feat_txt, mask_txt, attn_mask_type="full", pretext=None):
    """go_cross: [visual ; pretext ; text] through the fusion encoder; returns the whole sequence."""
    parts = [feat_img] + ([pretext[0]] if pretext is not None else []) + [feat_txt]
    mask = original_attn_mask(mask_img, mask_txt, attn_mask_type, None if pretext is None else pretext[1])
    return model.trsfr(torch.cat(parts, 1), attention_mask=extended(mask)).last_hidden_state


def original_greedy(model, img, size_txt, max_len, pretext=None):
    """LAVENDER_Captioning.generate / _generate_no_beam_search (greedy): the seq2seq mask of the S-long text
    built once; each step the whole [visual ; pretext ; ids + [MASK]] runs under its top-left slice and the
    logits at the [MASK] give the next token; finished rows get [PAD]; at the length limit unfinished rows end
    with [SEP]; score = mean log-prob over the steps taken while unfinished."""
    cls, sep, pad, msk = SPECIAL["cls"], SPECIAL["sep"], SPECIAL["pad"], SPECIAL["mask"]
    feat_img, mask_img = model.encode_video(img)
    B, Lv = mask_img.shape
    Lp = 0 if pretext is None else pretext[0].shape[1]
    full = original_attn_mask(mask_img, torch.ones(B, size_txt, dtype=torch.long), "seq2seq",
                              None if pretext is None else pretext[1])
    ids = torch.full((B, 1), cls)
    unfinished, logprobs, unfinished_steps = torch.ones(B, dtype=torch.long), [], []
    cur = 1
    while cur < max_len:
        inp = torch.cat([ids, torch.full((B, 1), msk)], 1)
        feat = torch.cat([feat_img] + ([pretext[0]] if pretext is not None else [])
                         + [original_enc_txt(model, inp, attn_mask_type="seq2seq")], 1)
        end = Lv + Lp + inp.shape[1]
        out = model.trsfr(feat, attention_mask=extended(full[:, :end, :end])).last_hidden_state
        logits = model.fc_mtm(out[:, Lv + Lp:])[:, cur]
        nxt = logits.argmax(-1)
        logprobs.append(logits.log_softmax(-1).gather(-1, nxt[:, None]))
        unfinished_steps.append(unfinished)
        add = nxt * unfinished + pad * (1 - unfinished)
        ids = torch.cat([ids, add[:, None]], 1)
        unfinished = unfinished * (add != sep).long()
        cur += 1
        if unfinished.max() == 0:
            break
    if cur == max_len:
        ids[:, -1].masked_fill_(unfinished.bool(), sep)
    lp, u = torch.cat(logprobs, 1), torch.stack(unfinished_steps, 1).float()
    ids = torch.cat([ids, torch.full((B, max_len - ids.shape[1]), pad)], 1)
    return ids, (lp * u).sum(1) / u.sum(1)


# ----------------------------------------------------------------------------- fixtures
def video(n=8):
    return torch.randn(n, 2, 3, 64, 64, generator=torch.Generator().manual_seed(1))


@pytest.fixture(scope="module")
def colour(tmp_path_factory):
    """(the colour world with every task kind, its tiny tokenizer)."""
    root = make_color_world(str(tmp_path_factory.mktemp("world")), n_videos=16)
    return root, load_tokenizer(write_tiny_vocab(root)[0])


def _maxdiff(a, b):
    return (a.double() - b.double()).abs().max().item()


def _reldiff(a, b):
    """Max difference relative to the reference's scale (ratios of logits amplify rounding when the sum is small)."""
    return _maxdiff(a, b) / max(1.0, b.double().abs().max().item())


def _loss_and_grads_diff(model, loss, ref):
    """Max difference of two losses and of their gradients over the model's parameters (inf: not the same
    parameters reached)."""
    params = list(model.parameters())
    ga = torch.autograd.grad(loss, params, allow_unused=True, retain_graph=True)
    gb = torch.autograd.grad(ref, params, allow_unused=True)
    worst = abs(loss.item() - ref.item())
    for a, b in zip(ga, gb):
        if (a is None) != (b is None):
            return float("inf")
        if a is not None:
            worst = max(worst, _maxdiff(a, b))
    return worst


# ----------------------------------------------------------------------------- 1. seq2seq mask and decoding
def check_seq2seq(model):
    """Max difference of our seq2seq mask and fusion (with a task token, and with SwinBERT's masked visual
    columns) from the original's; inf when the masks differ."""
    txt = torch.tensor([[2, 7, 8, 9, 3, 0], [2, 11, 3, 0, 0, 0]])
    mask_txt = (txt != 0).long()
    worst = 0.0
    with torch.no_grad():
        feat_img, mask_img = model.encode_video(video(2))
        mask_img = mask_img.clone()
        mask_img[:, 3] = 0  # a masked visual column must stay masked for every row
        feat_txt = model.embed_text(txt, mask_txt)
        for pre in (None, model.pretext(2, task_token="cap")):
            prefix = mask_img if pre is None else torch.cat([mask_img, pre[1]], 1)
            ours = Lavender.attention_mask(prefix, mask_txt, "seq2seq")
            want = extended(original_attn_mask(mask_img, mask_txt, "seq2seq", None if pre is None else pre[1]))
            if not torch.equal(ours, want):
                return float("inf")
            got = model.fuse(feat_img, mask_img, feat_txt, mask_txt, pretext=pre, attn="seq2seq", return_all=True)
            ref = original_cross(model, feat_img, mask_img, feat_txt, mask_txt, "seq2seq", pre)
            worst = max(worst, _maxdiff(got, ref))
    return worst


def check_decoding(model, use_cache, max_len=10, with_pretext=False):
    """(ids equal, max score difference) of our greedy decoding against the original's loop."""
    img = video()
    pre = model.pretext(img.shape[0], task_token="cap") if with_pretext else None
    with torch.no_grad():
        ref_ids, ref_scores = original_greedy(model, img, size_txt=12, max_len=max_len, pretext=pre)
        out = generate(model, img, SPECIAL, GenerationConfig(max_gen_length=max_len), pretext=pre,
                       use_cache=use_cache)
    return torch.equal(out.ids, ref_ids), _maxdiff(out.scores, ref_scores), ref_ids


def _noncausal_seq2seq(orig):
    def mask(mask_prefix, mask_txt, attn="full", dtype=torch.float32):
        if attn == "seq2seq":  # a bug: text rows see later text
            B, Lp, Lt = mask_prefix.shape[0], mask_prefix.shape[1], mask_txt.shape[1]
            m = torch.ones(B, 1, Lp + Lt, Lp + Lt)
            m[:, 0, :, :Lp] = mask_prefix[:, None, :].float()
            m[:, 0, :Lp, Lp:] = 0
            return (1.0 - m.to(dtype)) * torch.finfo(dtype).min
        return orig(mask_prefix, mask_txt, attn, dtype)
    return staticmethod(mask)


def test_seq2seq_mask_and_fusion_are_the_originals(monkeypatch):
    model = tiny_model(swinbert=True)
    assert check_seq2seq(model) <= TOL
    monkeypatch.setattr(Lavender, "attention_mask", _noncausal_seq2seq(Lavender.attention_mask))
    assert check_seq2seq(model) > TOL


@pytest.mark.parametrize("use_cache", [True, False])
@pytest.mark.parametrize("kw", [{}, {"txt_backbone_embed_only": False}, {"swinbert": True}])
def test_caption_decoding_is_the_originals(use_cache, kw):
    model = tiny_model(**kw)
    same, diff, ids = check_decoding(model, use_cache)
    assert same and diff <= TOL
    if not kw:  # early stops and the length cut are both exercised
        lengths = [row.index(SPECIAL["sep"]) + 1 for row in ids.tolist()]
        assert len(set(lengths)) > 1 and max(lengths) == 10
    same, diff, _ = check_decoding(model, use_cache, with_pretext=True)
    assert same and diff <= TOL


def test_caption_decoding_check_fails_when_perturbed(monkeypatch):
    model = tiny_model(txt_backbone_embed_only=False)
    with monkeypatch.context() as m:  # each video decoded from another video's state
        mlm = Lavender.mlm
        m.setattr(Lavender, "mlm", lambda self, hidden, rows=None: mlm(self, hidden, rows) if hidden.dim() != 2
                  else mlm(self, torch.roll(hidden, 1, 0), rows))
        same, diff, _ = check_decoding(model, True)
        assert not (same and diff <= TOL)
    with monkeypatch.context() as m:  # the naive step with a non-causal text block
        m.setattr(Lavender, "attention_mask", _noncausal_seq2seq(Lavender.attention_mask))
        same, diff, _ = check_decoding(model, False)
        assert not (same and diff <= TOL)
    with monkeypatch.context() as m:  # a bidirectional text encoder while decoding
        embed = Lavender.embed_text
        m.setattr(Lavender, "embed_text", lambda self, txt, mask=None, causal=False: embed(self, txt, mask, False))
        same, diff, _ = check_decoding(model, True)
        assert not (same and diff <= TOL)


# ----------------------------------------------------------------------------- 2. multiple-choice layouts
def original_digit_text(tok, item, size_txt, size_option, mask_pos):
    """Dataset_QAMC_MLM: question, then ` [SEP] option i: o_i` per option (concat_txt), tokenised and cut to
    S-1 tokens, [MASK] placed by mask_pos, padded so that the [CLS]/[MASK]/[SEP] frame adds 3 (2 for replace)."""
    q = item["question"]
    for i in range(size_option):
        q = q + f" {tok.sep_token} " + f"option {i}: " + item[f"option_{i}"]
    t = tok.tokenize(q)[: size_txt - 1]
    pad = [tok.pad_token] * (size_txt - len(t))
    cls, sep, msk = tok.cls_token, tok.sep_token, tok.mask_token
    if mask_pos == "append":
        t = [cls] + t + [msk, sep] + pad
    elif mask_pos == "prepend":
        t = [msk, cls] + t + [sep] + pad
    elif mask_pos == "replace":
        t = [msk] + t + [sep] + pad
    else:
        t = [cls] + t + [sep] + pad
        t = t + [msk] if len(t) < 10 else t[:10] + [msk] + t[10:]
    return torch.tensor(tok.convert_tokens_to_ids(t))


def original_truefalse_texts(tok, item, size_txt, size_option):
    """Dataset_RetMC_MLM: per option `question option` (the option alone for an empty question), base-encoded
    to S ([CLS] tokens[:S-2] [SEP] [PAD]...), then a [MASK] appended after the padding."""
    rows = []
    for i in range(size_option):
        s = f"{item['question']} {item[f'option_{i}']}" if item["question"] else item[f"option_{i}"]
        t = [tok.cls_token] + tok.tokenize(s)[: size_txt - 2] + [tok.sep_token]
        t = t + [tok.pad_token] * (size_txt - len(t)) + [tok.mask_token]
        rows.append(tok.convert_tokens_to_ids(t))
    return torch.tensor(rows)


def check_mc_layouts(colour, tmp_path):
    world, tok = colour
    """Failures of the option-index (4 mask positions) and true/false layouts and of their scores
    (retrieval_score ratio, the original's scoring) against the original's."""
    fails = []
    for mask_pos in ("append", "prepend", "replace", "insert"):
        cfg = load_config(tiny_argv(world, tmp_path, "tiny-qamc", "qamc", size_txt=40, mask_pos=mask_pos,
                                    retrieval_score="ratio"))
        t = build_task("qamc", cfg, tok)
        for item in t.datasets["val"].items[:3]:
            out = t.encode(item, False, None)
            want = original_digit_text(tok, item, cfg.size_txt, cfg.size_option, mask_pos)
            if not torch.equal(out["txt"], want) or not torch.equal(out["mask"], (want != tok.pad_token_id).long()):
                fails.append(("digit layout", mask_pos, item["video"]))
    torch.manual_seed(0)
    model = create_model(cfg, heads=t.heads()).eval()  # the last mask_pos ("insert"): [MASK] inside the text
    batch = _batch(t)
    with torch.no_grad():
        scores, _, target = t.option_scores(model, batch)
        logits = model(batch["img"], batch["txt"], batch["mask"])  # full MLM logits of every text position
        digits = tok.convert_tokens_to_ids([str(i) for i in range(cfg.size_option)])
        at = logits[batch["txt"] == tok.mask_token_id][:, digits]  # Agent_QAMC_MLM: digit logits / their sum
        if _reldiff(scores, at / at.sum(-1, keepdim=True)) > TOL:
            fails.append(("digit scores",))
        if not torch.equal(target, torch.tensor(tok.convert_tokens_to_ids([str(int(a)) for a in batch["label"]]))):
            fails.append(("digit label",))
    cfg = load_config(tiny_argv(world, tmp_path, "tiny-mc", "qamc", mc_mode="truefalse", retrieval_score="ratio"))
    t = build_task("qamc", cfg, tok)
    for item in t.datasets["val"].items[:3] + [dict(t.datasets["val"].items[0], question="which one?")]:
        out = t.encode(item, False, None)
        want = original_truefalse_texts(tok, item, cfg.size_txt, cfg.size_option)
        if not torch.equal(out["txt"], want) or not torch.equal(out["mask"], (want != tok.pad_token_id).long()):
            fails.append(("true/false layout", item["video"]))
    torch.manual_seed(0)
    model = create_model(cfg, heads=t.heads()).eval()
    batch = _batch(t)
    with torch.no_grad():
        scores, _, _ = t.option_scores(model, batch)
        B, O, L = batch["txt"].shape
        logits = model(batch["img"].repeat_interleave(O, 0), batch["txt"].view(B * O, L), batch["mask"].view(B * O, L))
        tf = logits[:, -1][:, [tok.convert_tokens_to_ids("true"), tok.convert_tokens_to_ids("false")]]
        if _reldiff(scores, (tf[:, 0] / (tf[:, 0] + tf[:, 1])).view(B, O)) > TOL:  # Agent_RetMC_MLM
            fails.append(("true/false scores",))
    return fails


def _batch(t, split="val", n=3):
    return t.collate([t.datasets[split][i] for i in range(n)])


def test_multiple_choice_layouts_are_the_originals(colour, tmp_path):
    assert check_mc_layouts(colour, tmp_path) == []


def test_multiple_choice_check_fails_when_perturbed(colour, tmp_path, monkeypatch):
    with monkeypatch.context() as m:  # options numbered from 1
        m.setattr(MCDigit, "text", lambda self, item: item.get("question", "") + "".join(
            f" [SEP] option {i + 1}: {o}" for i, o in enumerate(self.options(item))))
        assert any(f[0] == "digit layout" for f in check_mc_layouts(colour, tmp_path))
    with monkeypatch.context() as m:  # option before the question
        m.setattr(MCTrueFalse, "texts", lambda self, item: [f"{o} {item.get('question', '')}".strip()
                                                            for o in self.options(item)])
        assert any(f[0] == "true/false layout" for f in check_mc_layouts(colour, tmp_path))


def test_option_index_prompt_is_built_from_size_option(colour, tmp_path):
    """The original's prompt names the options it has: "which answer is correct, from [0, 1, 2, 3]?" for 4."""
    world, tok = colour
    for n in (4, 5):
        cfg = load_config(tiny_argv(world, tmp_path, "tiny-qamc", "qamc", size_txt=40, size_option=n,
                                    enable_prompt=True))
        t = build_task("qamc", cfg, tok)
        want = "which answer is correct, from " + f"{list(range(n))}?"
        assert t.prompt(t.prompt_name) == want
        model = create_model(cfg, heads=t.heads()).eval()
        ids = torch.tensor(tok.convert_tokens_to_ids([tok.cls_token] + tok.tokenize(want) + [tok.sep_token]))
        feat, mask = t.pretext(model, 1)
        assert torch.equal(feat, model.pretext(1, prompt_ids=ids)[0]) and mask.shape == (1, len(ids))


# ----------------------------------------------------------------------------- 3. the text's own encoder
def check_text_encoder(model):
    """Max difference of our text encoder (padding mask; causal) from the original's EncTxt, on padded text."""
    txt = torch.tensor([[2, 7, 8, 9, 3, 0, 0], [2, 11, 12, 3, 0, 0, 0]])
    mask = (txt != 0).long()
    with torch.no_grad():
        full = _maxdiff(model.embed_text(txt, mask), original_enc_txt(model, txt, mask, "full"))
        causal = _maxdiff(model.embed_text(txt, mask, causal=True), original_enc_txt(model, txt, mask, "seq2seq"))
    return max(full, causal)


def check_caption_training(colour, tmp_path, causal):
    """Max difference of our captioning training loss and its gradients (text encoder causal or not) from the
    original's encode_forward + CaptioningLoss (plain cross-entropy at the masked positions); dropout off."""
    world, tok = colour
    argv = tiny_argv(world, tmp_path, "tiny-cap", "captioning", txt_backbone_embed_only=False,
                     caption_txt_causal=causal, caption_meteor=False, max_gen_length=8,
                     train_yaml="tiny-cap/train.yaml", val_yaml="tiny-cap/val.yaml", test_yaml="tiny-cap/test.yaml")
    cfg = load_config(argv)
    cfg.bert_config = dict(cfg.bert_config or {}, hidden_dropout_prob=0.0, attention_probs_dropout_prob=0.0)
    cfg.swin_config = dict(cfg.swin_config, drop_path_rate=0.0)
    t = build_task("captioning", cfg, tok)
    torch.manual_seed(0)
    model = create_model(cfg, heads=t.heads()).train()
    batch = _batch(t, "train", 4)
    assert (batch["mask"] == 0).any() and (batch["labels"] >= 0).any()
    loss, _ = t.train_step(model, batch)
    # the original: go_feat (text encoder with the padding mask: training never passes seq2seq to it) and
    # go_cross with seq2seq, fc_mtm on the text part, cross-entropy where the label is not -1
    feat_img, mask_img = model.encode_video(batch["img"])
    feat_txt = original_enc_txt(model, batch["txt"], batch["mask"], "seq2seq" if causal else "full")
    out = original_cross(model, feat_img, mask_img, feat_txt, batch["mask"], "seq2seq")[:, feat_img.shape[1]:]
    logits, labels = model.fc_mtm(out), batch["labels"]
    return _loss_and_grads_diff(model, loss, F.cross_entropy(logits[labels != -1].float(), labels[labels != -1]))


@pytest.mark.parametrize("kw", [{}, {"swinbert": True}])
def test_text_encoder_is_the_originals(kw, monkeypatch):
    model = tiny_model(txt_backbone_embed_only=False, **kw)
    assert check_text_encoder(model) <= TOL
    forward = EncTxt.forward
    monkeypatch.setattr(EncTxt, "forward", lambda self, txt, mask=None, causal=False: forward(self, txt, None, causal))
    assert check_text_encoder(model) > TOL  # padding no longer masked


@pytest.mark.parametrize("causal", [False, True])
def test_captioning_training_with_the_text_encoder(colour, tmp_path, causal, monkeypatch):
    """caption_txt_causal false is the original's training (bidirectional text encoder); true (ours) is causal
    as decoding sees the text. Each equals its reference; swapping the encoder's mask breaks the check."""
    assert check_caption_training(colour, tmp_path, causal) <= 1e-5
    embed = Lavender.embed_text
    monkeypatch.setattr(Lavender, "embed_text", lambda self, txt, mask=None, causal=False: embed(self, txt, mask,
                                                                                                 not causal))
    assert check_caption_training(colour, tmp_path, causal) > 1e-5


# ----------------------------------------------------------------------------- 4. SwinBERT projection and keys
def original_swinbert_tokens(model, img):
    """EncVideo with swinbert: Swin features -> fc (-> 512) -> img_embedding (-> hidden), a zero fake [CLS] per
    frame with mask 0, no position/frame embeddings, no LayerNorm."""
    enc = model.enc_img
    B, T, _, H, W = img.shape
    f = enc.swin(img.transpose(1, 2)).transpose(1, 2)
    f = f.permute(0, 1, 3, 4, 2).reshape(B, T, (H // 32) * (W // 32), -1)
    f = enc.img_embedding(enc.fc(f))
    f = torch.cat([torch.zeros(B, T, 1, f.shape[-1]), f], 2)
    m = torch.cat([torch.zeros(B, T, 1, dtype=torch.long), torch.ones(B, T, f.shape[2] - 1, dtype=torch.long)], 2)
    return f.reshape(B, -1, f.shape[-1]), m.reshape(B, -1)


def original_swinbert_mapping(sd):
    """load_SwinBERT_weight: the renames in its order (substring rules; fc. and trans_encoder.cls. as prefixes),
    everything else dropped, and the decoder bias set to predictions.bias."""
    out = {}
    for key, v in sd.items():
        if "swin.backbone" in key:
            out[key.replace("swin.backbone", "enc_img.swin")] = v
        elif "trans_encoder.bert.encoder" in key:
            out[key.replace("trans_encoder.bert.encoder", "trsfr")] = v
        elif "trans_encoder.bert.embeddings" in key:
            out[key.replace("trans_encoder.bert.embeddings", "enc_txt.emb_txt")] = v
        elif key.startswith("fc."):
            out[key.replace("fc.", "enc_img.fc.")] = v
        elif "trans_encoder.bert.img_embedding" in key:
            out[key.replace("trans_encoder.bert.img_embedding", "enc_img.img_embedding")] = v
        elif key.startswith("trans_encoder.cls."):
            out[key.replace("trans_encoder.cls.", "fc_mtm.")] = v
    out["fc_mtm.predictions.decoder.bias"] = out["fc_mtm.predictions.bias"]
    return out


def swinbert_checkpoint(model):
    """A model's weights under SwinBERT's key names, plus keys SwinBERT has and LAVENDER drops."""
    names = {"enc_img.swin.": "swin.backbone.", "trsfr.": "trans_encoder.bert.encoder.",
             "enc_txt.emb_txt.": "trans_encoder.bert.embeddings.", "enc_img.fc.": "fc.",
             "enc_img.img_embedding.": "trans_encoder.bert.img_embedding.", "fc_mtm.": "trans_encoder.cls."}
    sd = {}
    for k, v in model.state_dict().items():
        a = next((a for a in names if k.startswith(a)), None)
        if a is not None and k != "fc_mtm.predictions.decoder.bias":
            sd[names[a] + k[len(a):]] = v.clone()
    sd["trans_encoder.cls.predictions.decoder.bias"] = torch.full_like(model.fc_mtm.predictions.bias, 7.0)
    for extra in ("learn_vid_att.weight", "trans_encoder.bert.pooler.dense.weight", "swin.cls_head.fc_cls.weight"):
        sd[extra] = torch.zeros(3)
    return sd


def check_swinbert(tmp_path):
    """Max difference of the visual tokens/mask and of a loaded SwinBERT checkpoint from the original's."""
    src, dst = tiny_model(swinbert=True), tiny_model(swinbert=True)
    with torch.no_grad():
        for p in dst.parameters():
            p.zero_()
    img = video(2)
    with torch.no_grad():
        feat, mask = src.encode_video(img)
        want_f, want_m = original_swinbert_tokens(src, img)
    if not torch.equal(mask, want_m):
        return float("inf")
    worst = _maxdiff(feat, want_f)
    sd = swinbert_checkpoint(src)
    torch.save(sd, tmp_path / "SwinBERT_model.bin")
    try:
        load_weights(dst, tmp_path / "SwinBERT_model.bin", strict=False, log=lambda *a: None, warn=lambda *a: None)
    except Exception:
        return float("inf")
    want = {k: v for k, v in original_swinbert_mapping(sd).items() if k in dst.state_dict()}
    got = dst.state_dict()
    for k, v in want.items():  # every tensor the original loads, loaded alike
        worst = max(worst, _maxdiff(got[k], v))
    missing = [k for k in got if k not in want and k != "emb_task" and not k.endswith("relative_position_index")]
    return float("inf") if missing else worst


def test_swinbert_projection_and_mapping_are_the_originals(tmp_path, monkeypatch):
    assert check_swinbert(tmp_path) <= TOL
    with monkeypatch.context() as m:  # the fake [CLS] visible
        forward = EncVideo.forward
        m.setattr(EncVideo, "forward", lambda self, img, odr=None: (lambda f: (f[0], torch.ones_like(f[1])))(
            forward(self, img, odr)))
        assert check_swinbert(tmp_path) > TOL
    with monkeypatch.context() as m:  # the embedding rule mapped onto the fusion encoder
        rules = tuple((a, "trsfr." if a == "trans_encoder.bert.embeddings." else b) for a, b in
                      layouts.SWINBERT_RENAMES)
        m.setattr(layouts, "SWINBERT_RENAMES", rules)
        assert check_swinbert(tmp_path) > TOL


# ----------------------------------------------------------------------------- 5. one QA training step
@pytest.fixture(scope="module")
def ref_qa(tmp_path_factory):
    """The reference model of ref_A.pt with dropout and drop path off, its inputs, and a QA task on its vocabulary."""
    ref = torch.load(REF, weights_only=True)
    cfg = dict(ref["config"])
    cfg["bert"] = dict(cfg["bert"], hidden_dropout_prob=0.0, attention_probs_dropout_prob=0.0)
    cfg["swin"] = dict(cfg["swin"], drop_path_rate=0.0)
    tool = load_tool("check_reference")
    model = tool.build_from_config(cfg)
    model.load_state_dict({k: v for k, v in ref["state_dict"].items() if k in model.state_dict()}, strict=True)
    ids = ref["config"]["token_ids"]
    vocab = tmp_path_factory.mktemp("refvocab")
    words = sorted(ids, key=ids.get)
    n = ref["config"]["bert"]["vocab_size"]
    (vocab / "vocab.txt").write_text("\n".join(words + [f"w{i}" for i in range(len(words), n)]) + "\n")
    tok = load_tokenizer(str(vocab))
    qcfg = default_config()
    qcfg.update(size_txt=ref["config"]["size_txt"], config="ref_A")
    task = QAOpenEnded(qcfg, tok, build_data=False)
    return model, ref, task


def check_qa_step(model, ref, task):
    """Max difference of one QA training step's gradients (train mode, dropout off) from the original's: the
    evaluation-mode forward (equal to the original's recorded logits) and its loss, cross-entropy over every
    text position with the answer vector (-1 ignored)."""
    inp = ref["inputs"]
    txt, mask, ans = inp["txt_qa"], inp["mask_qa"], inp["mask_ans_qa"]
    model.eval()
    logits = model(inp["img"], txt, mask)
    assert _maxdiff(logits, ref["outputs"]["qa_logits"]) <= TOL  # the forward is the original's
    loss_ref = F.cross_entropy(logits.flatten(0, 1), ans.flatten(), ignore_index=-1)
    model.train()
    label = ans.max(1).values  # one answer per question, at its [MASK]
    batch = {"img": inp["img"], "txt": txt, "mask": mask, "label": label, "labels": ans}
    loss, _ = task.train_step(model, batch)
    model.eval()
    return _loss_and_grads_diff(model, loss, loss_ref)


def test_qa_training_step_gradients_are_the_originals(ref_qa, monkeypatch):
    model, ref, task = ref_qa
    assert check_qa_step(model, ref, task) <= TOL
    with monkeypatch.context() as m:  # summed instead of averaged over the questions
        ce = ModelHelpers.ce_valid
        m.setattr(ModelHelpers, "ce_valid", staticmethod(lambda logits, labels: ce(logits, labels) * 2))
        assert check_qa_step(model, ref, task) > TOL
    drops = [mod for mod in model.modules() if isinstance(mod, torch.nn.Dropout)]
    try:  # dropout left on in training
        for d in drops:
            d.p = 0.1
        model.bert_config.attention_probs_dropout_prob = 0.1
        assert check_qa_step(model, ref, task) > TOL
    finally:
        for d in drops:
            d.p = 0.0
        model.bert_config.attention_probs_dropout_prob = 0.0
