"""Caption decoding: the key/value cache against the original's full forward per step, greedy/beam/sampling
rules, the seq2seq mask with a pretext, and clear errors."""
import pytest
import torch

from lavender.errors import ConfigError
from lavender.models.generation import (GenerationConfig, _repetition_penalty, _top_k_top_p, decode_captions,
                                        generate)
from tiny import DECODER_SPECIAL as SPECIAL, DECODER_VOCAB as V, decoder_model as tiny_model


@pytest.fixture(scope="module")
def model():
    return tiny_model()


def video():
    return torch.randn(8, 2, 3, 64, 64, generator=torch.Generator().manual_seed(1))


@pytest.fixture(scope="module")
def img(model):
    """Visual features of 8 videos, computed once (generate's `features`)."""
    with torch.no_grad():
        return model.encode_video(video())


def gen(model, feats, settings, **kw):
    return generate(model, None, SPECIAL, settings, features=feats, **kw)


def run(model, feats, use_cache=True, **kw):
    return gen(model, feats, GenerationConfig(**dict({"max_gen_length": 10}, **kw)), use_cache=use_cache)


def assert_same(a, b, tol=1e-5):
    assert torch.equal(a.ids, b.ids)
    assert torch.allclose(a.scores, b.scores, atol=tol, rtol=0)


def test_greedy_output_format(model, img):
    out = run(model, img)
    assert out.ids.shape == (8, 10) and out.ids.dtype == torch.long and out.scores.shape == (8,)
    assert (out.ids[:, 0] == SPECIAL["cls"]).all()
    lengths = []
    for row in out.ids.tolist():
        end = row.index(SPECIAL["sep"])  # every caption ends with exactly one [SEP], then only [PAD]
        assert row.count(SPECIAL["sep"]) == 1 and set(row[end + 1:]) <= {SPECIAL["pad"]}
        lengths.append(end + 1)
    assert len(set(lengths)) > 2 and 10 in lengths  # the fixture exercises early stops and the length cut
    assert (out.scores < 0).all()


@pytest.mark.parametrize("kw", [{}, {"num_beams": 3}, {"repetition_penalty": 1.3}])
def test_cache_equals_naive_full_forward(model, img, kw):
    assert_same(run(model, img, **kw), run(model, img, use_cache=False, **kw))


def test_text_encoder_is_causal_while_decoding():
    """txt_backbone_embed_only false: the text's own encoder sees only earlier tokens, so the cached steps
    equal the full forward (a bidirectional text encoder would change the cached rows at every step)."""
    m = tiny_model(txt_backbone_embed_only=False)
    with torch.no_grad():
        feats = m.encode_video(video())
        assert_same(run(m, feats), run(m, feats, use_cache=False))


@pytest.mark.parametrize("kind", ["task_token", "prompt"])
def test_pretext(model, img, kind):
    B = img[0].shape[0]
    if kind == "task_token":
        pre = model.pretext(B, task_token="cap")
    else:  # a prompt with a padded position: masked in the prefix for every row
        pre = model.pretext(B, prompt_ids=torch.tensor([2, 7, 9, 3, 0]), prompt_mask=torch.tensor([1, 1, 1, 1, 0]))
    s = GenerationConfig(max_gen_length=10)
    with_pre = gen(model, img, s, pretext=pre)
    assert_same(with_pre, gen(model, img, s, pretext=pre, use_cache=False))
    assert not torch.equal(with_pre.ids, run(model, img).ids)  # the pretext reaches the decoder
    beams = GenerationConfig(max_gen_length=10, num_beams=2)
    assert_same(gen(model, img, beams, pretext=pre), gen(model, img, beams, pretext=pre, use_cache=False))


def test_swinbert_visual_mask():
    """SwinBERT mode has masked (fake CLS) prefix positions: the cache must honour the prefix mask."""
    m = tiny_model(swinbert=True)
    with torch.no_grad():
        feats = m.encode_video(video())
    assert (feats[1] == 0).any()
    assert_same(run(m, feats), run(m, feats, use_cache=False))


def test_beam_one_is_greedy(model, img):
    greedy, beam1 = run(model, img), run(model, img, num_beams=1)
    assert_same(greedy, beam1, tol=0)
    # the beam loop itself with one beam (num_beams 1 dispatches to greedy above)
    from lavender.models.generation import _beam, _CachedStepper
    feat, mask = img
    with torch.no_grad():
        ids, scores = _beam(_CachedStepper(model, feat, mask, None, SPECIAL["mask"]), feat.shape[0], feat.device,
                            GenerationConfig(max_gen_length=10), SPECIAL)
    pad = greedy.ids.new_zeros(feat.shape[0], 10 - ids.shape[1])
    assert torch.equal(torch.cat([ids, pad], 1), greedy.ids)
    assert torch.allclose(scores, greedy.scores, atol=1e-6, rtol=0)


def test_more_beams_score_at_least_greedy(model, img):
    greedy, beam = run(model, img), run(model, img, num_beams=4)
    assert (beam.scores >= greedy.scores - 1e-6).all()
    assert (beam.scores > greedy.scores + 1e-3).any()  # and it finds better captions somewhere


def test_beam_search_is_exhaustive_with_enough_beams(model, img):
    """max_gen_length 3 and num_beams = vocabulary size: beam search must find the best caption of all
    ([CLS] [SEP], or [CLS] a b with b cut to [SEP]), scored by the naive full forward."""
    feat, mask = img
    B = feat.shape[0]
    cls, sep, msk = SPECIAL["cls"], SPECIAL["sep"], SPECIAL["mask"]
    with torch.no_grad():
        t1 = torch.tensor([[cls, msk]] * B)
        lp1 = model.mlm(model.fuse(feat, mask, model.embed_text(t1), torch.ones_like(t1), attn="seq2seq")[:, 1])
        lp1 = lp1.log_softmax(-1)  # (B, V)
        t2 = torch.tensor([[cls, a, msk] for a in range(V)]).repeat(B, 1)  # (B*V, 3)
        h = model.fuse(feat.repeat_interleave(V, 0), mask.repeat_interleave(V, 0), model.embed_text(t2),
                       torch.ones_like(t2), attn="seq2seq")
        best2 = model.mlm(h[:, 2]).log_softmax(-1).max(-1).values.view(B, V)
    scores = (lp1 + best2) / 2
    scores[:, sep] = lp1[:, sep]
    out = run(model, img, max_gen_length=3, num_beams=V)
    assert torch.allclose(out.scores, scores.max(1).values, atol=1e-5, rtol=0)
    first = scores.argmax(1)
    assert torch.equal(out.ids[:, 1], first)
    assert (out.ids[first != sep, 2] == sep).all()


def test_length_limit_forces_sep(model, img):
    m = tiny_model()
    with torch.no_grad():
        m.fc_mtm.predictions.bias[SPECIAL["sep"]] = -1e4  # never chosen
    for kw in ({}, {"num_beams": 3}):
        out = run(m, img, max_gen_length=6, **kw)
        assert (out.ids[:, -1] == SPECIAL["sep"]).all() and (out.ids[:, 1:-1] != SPECIAL["sep"]).all()


def test_sampling(model, img):
    def sample(seed, use_cache=True, **kw):
        s = GenerationConfig(max_gen_length=10, do_sample=True, **kw)
        return gen(model, img, s, generator=torch.Generator().manual_seed(seed), use_cache=use_cache)
    a, b = sample(0, temperature=1.5), sample(0, temperature=1.5)
    assert_same(a, b, tol=0)  # reproducible with a generator
    assert_same(a, sample(0, use_cache=False, temperature=1.5))
    assert not torch.equal(a.ids, sample(1, temperature=1.5).ids)
    greedy = run(model, img)
    assert torch.equal(sample(3, top_k=1).ids, greedy.ids)  # top-k 1 (or a tiny top-p) is greedy
    assert torch.equal(sample(4, top_p=1e-6).ids, greedy.ids)


def test_logits_processors():
    logits = torch.tensor([[2.0, -1.0, 0.5, 3.0]])
    out = _repetition_penalty(logits, torch.tensor([[0, 1, 1]]), 2.0)
    assert torch.equal(out, torch.tensor([[1.0, -2.0, 0.5, 3.0]]))
    k2 = _top_k_top_p(logits, 2, 1.0)
    assert torch.isinf(k2).tolist() == [[False, True, True, False]]
    p = _top_k_top_p(logits, 0, 0.7)  # softmax: 3.0 -> 0.63, 2.0 -> 0.23: both needed to reach 0.7
    assert torch.isinf(p).tolist() == [[False, True, True, False]]


def test_errors(model, img):
    with pytest.raises(ValueError, match="max_gen_length 30 exceeds the 24 text positions"):
        run(model, img, max_gen_length=30)
    with pytest.raises(ConfigError, match="exceeds size_txt 12"):
        GenerationConfig.from_config({"max_gen_length": 20}, size_txt=12)
    with pytest.raises(ConfigError, match="only apply when sampling"):
        GenerationConfig.from_config({"top_k": 5})
    with pytest.raises(ConfigError, match="beam sampling"):
        GenerationConfig(do_sample=True, num_beams=2)
    assert GenerationConfig.from_config({"num_beams": 3, "gen_temperature": 1.0}).num_beams == 3
    model.train()
    try:
        with pytest.raises(RuntimeError, match="eval"):
            run(model, img)
    finally:
        model.eval()


def test_decode_captions(tmp_path):
    from transformers import BertTokenizer
    vocab = tmp_path / "vocab.txt"
    vocab.write_text("\n".join(["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]", "a", "red", "circle", "##s"]) + "\n")
    tok = BertTokenizer(str(vocab))
    assert decode_captions(tok, torch.tensor([[2, 5, 6, 7, 8, 3, 0]])) == ["a red circles"]


def test_seq2seq_pretext_is_visible_prefix(model, img):
    """docs/original.md#attention-masks-full-and-seq2seq: with seq2seq the pretext is part of the prefix every row sees; text is causal."""
    feat, mask = img[0][:2], img[1][:2]
    txt = torch.tensor([[2, 7, 8, 9]] * 2)
    with torch.no_grad():
        def fused(task, ids=txt):
            return model.fuse(feat, mask, model.embed_text(ids), torch.ones_like(ids),
                              pretext=model.pretext(2, task_token=task), attn="seq2seq", return_all=True)
        a, b = fused("cap"), fused("vtm")
        Lv = feat.shape[1]
        assert not torch.allclose(a[:, :Lv], b[:, :Lv])  # visual rows attend to the task token
        changed = fused("cap", torch.tensor([[2, 7, 8, 11]] * 2))
        assert torch.allclose(changed[:, :-1], a[:, :-1], atol=1e-6)  # nothing sees a later text token
