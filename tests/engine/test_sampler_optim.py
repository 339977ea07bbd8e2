import torch

from lavender.engine.optim import param_groups, warmup_linear
from lavender.engine.sampler import ShardSampler


def test_train_shuffle_changes_per_epoch_and_resume_skips():
    s = ShardSampler(10, shuffle=True, seed=1)
    s.set_epoch(1)
    a = list(s)
    s.set_epoch(2)
    assert sorted(a) == list(range(10)) and list(s) != a
    s.set_epoch(1, start=4)
    assert list(s) == a[4:] and len(s) == 6


def test_ranks_cover_train_evenly_and_eval_exactly_once():
    train = [list(ShardSampler(10, r, 3, shuffle=True, seed=0)) for r in range(3)]
    assert len({len(t) for t in train}) == 1 and set(sum(train, [])) == set(range(10))
    ev = [list(ShardSampler(10, r, 3, shuffle=False)) for r in range(3)]
    assert sorted(sum(ev, [])) == list(range(10))
    assert [len(ShardSampler(10, r, 3)) for r in range(3)] == [len(e) for e in ev]


def test_schedule_and_groups():
    f = warmup_linear(100)
    assert f(0) == 1e-8 and abs(f(5) - 0.5) < 1e-9 and f(10) == 1.0 and abs(f(55) - 0.5) < 1e-9
    assert f(100) == 1e-8
    m = torch.nn.ModuleDict({"swin": torch.nn.Linear(2, 2), "LayerNorm": torch.nn.LayerNorm(2)})
    groups = {g["name"]: g for g in param_groups(m, 1e-3, 0.1, vis_lr_mul=2.0)}
    assert groups["decay_swin"]["lr"] == 2e-3 and groups["no_decay_swin"]["weight_decay"] == 0.0
    assert len(groups["no_decay_other"]["params"]) == 2  # LayerNorm weight and bias
