"""`compile_encoders` / the `compile` config key: same loss and gradients as eager on CPU (tiny model)."""
import os

import pytest
import torch
import torch.nn.functional as F

from lavender.config import load_config
from lavender.models import build_model, compile_encoders
from lavender.models.lavender import ENCODERS
from lavender.models.factory import create_model
from lavender.paths import REPO_ROOT
from tiny import TINY_MODEL, tiny_overrides

# no dropout or drop-path, so that a training-mode step is deterministic
CFG = dict(TINY_MODEL, fusion_encoder="", txt_backbone="",
           swin_config=dict(TINY_MODEL["swin_config"], drop_path_rate=0.0),
           bert_config=dict(TINY_MODEL["bert_config"], vocab_size=60, max_position_embeddings=64,
                            hidden_dropout_prob=0.0, attention_probs_dropout_prob=0.0))


def _loss_and_grads(model):
    g = torch.Generator().manual_seed(1)
    img = torch.randn(2, 2, 3, 32, 32, generator=g)  # shifted and padded Swin windows at 32 px
    txt = torch.randint(5, 60, (2, 7), generator=g)
    mask = torch.ones_like(txt)
    model.zero_grad(set_to_none=True)
    loss = F.cross_entropy(model(img, txt, mask)[:, -1], torch.tensor([3, 4]))
    loss.backward()
    return loss.detach(), {n: p.grad.clone() for n, p in model.named_parameters() if p.grad is not None}


def _check_compiled_matches_eager(backend, atol):
    torch.manual_seed(0)
    model = build_model(CFG).train()
    keys = list(model.state_dict())
    want, want_g = _loss_and_grads(model)
    compile_encoders(model, backend=backend)
    assert list(model.state_dict()) == keys  # compiled in place: checkpoints unchanged
    for _ in range(2):  # the second call runs the cached compiled code
        got, got_g = _loss_and_grads(model)
        assert torch.allclose(got, want, atol=atol), (got, want)
        assert got_g.keys() == want_g.keys()
        assert all(torch.allclose(got_g[k], want_g[k], atol=atol) for k in want_g)
    compile_encoders(model, enable=False)
    assert all(getattr(model, n)._compiled_call_impl is None for n in ENCODERS)


def test_compiled_encoders_same_loss_and_grads():
    # aot_eager: dynamo graph capture + AOT autograd (what can break on model code) without C++ codegen
    _check_compiled_matches_eager("aot_eager", 1e-6)


@pytest.mark.skipif(os.environ.get("LAVENDER_TEST_INDUCTOR") != "1",
                    reason="inductor compiles C++ for minutes on a cold cache; LAVENDER_TEST_INDUCTOR=1 runs it")
def test_inductor_same_loss_and_grads():
    _check_compiled_matches_eager("inductor", 1e-5)


def test_compile_config_key(tmp_path):
    argv = ["--config", os.path.join(REPO_ROOT, "_args", "args_msrvtt-qa.json"), "--compile", "true"]
    cfg = load_config(argv + tiny_overrides(tmp_path, tmp_path / "out"))
    model = create_model(cfg)
    assert all(getattr(model, n)._compiled_call_impl is not None for n in ENCODERS)
    assert all(getattr(create_model(dict(cfg, compile=False)), n)._compiled_call_impl is None for n in ENCODERS)
