"""Per-task loss weights (`loss_weight` in a datasets entry), and where the multi-task options are refused
(temperature-scaled task sampling itself: tests/tasks/test_multi_task.py)."""
import pytest
import torch

from lavender.config import load_config
from lavender.engine.dist import DistInfo
from lavender.errors import ConfigError
from lavender.models.factory import create_model
from lavender.tasks import build_task
from lavender.tokenizer import load_tokenizer
from tiny import make_color_world, tiny_argv


@pytest.fixture(scope="module")
def world(tmp_path_factory):
    return make_color_world(str(tmp_path_factory.mktemp("world")), n_videos=16)


def test_loss_weight_scales_its_tasks_loss(world, tmp_path):
    entries = [{"type": "qaoe", "task": "tiny-qa", "loss_weight": 3.0},
               {"type": "qamc", "task": "tiny-mc", "mc_mode": "truefalse"}]
    cfg = load_config(tiny_argv(world, tmp_path, "tiny-multi", "multi-task", datasets=entries, n_workers=0))
    task = build_task("multi-task", cfg, load_tokenizer(cfg.tokenizer))
    assert task.loss_weights == {"tiny-qa": 3.0, "tiny-mc": 1.0}
    model = create_model(cfg, heads=task.heads()).eval()  # no dropout: the same loss twice
    member = task.members["tiny-qa"]
    batch = next(iter(member.loader("train", DistInfo(0, 1), torch.device("cpu"))))
    batch["task"] = "tiny-qa"
    with torch.no_grad():
        weighted, stats = task.train_step(model, batch)
        plain, _ = member.train_step(model, batch)
    assert weighted.item() == pytest.approx(3 * plain.item(), rel=1e-6)
    assert stats["tiny-qa_ls"].item() == pytest.approx(plain.item(), rel=1e-6)  # the task's own loss is logged


def test_the_options_are_refused_where_they_would_do_nothing(world, tmp_path):
    for key, value in (("loss_weight", 2.0), ("task_sampling", "proportional")):  # a single-task run
        with pytest.raises(ConfigError, match=f"{key} .* applies to a multi-task run"):
            build_task("qaoe", load_config(tiny_argv(world, tmp_path, "tiny-qa", "qaoe", **{key: value})), None)
    entries = [{"type": "qaoe", "task": "tiny-qa"}]
    with pytest.raises(ConfigError, match="task_sampling"):  # the whole run's, not an entry's
        build_task("multi-task", load_config(tiny_argv(world, tmp_path, "tiny-multi", "multi-task", datasets=[
            {"type": "qaoe", "task": "tiny-qa", "task_sampling": "proportional"}])), None)
    with pytest.raises(ConfigError, match="task_temperature"):
        load_config(tiny_argv(world, tmp_path, "tiny-multi", "multi-task", task_temperature=0.0, datasets=entries))
    with pytest.raises(ConfigError, match="task_temperature 4.0 applies to task_sampling temperature"):
        load_config(tiny_argv(world, tmp_path, "tiny-multi", "multi-task", task_temperature=4.0, datasets=entries))
    cfg = load_config(tiny_argv(world, tmp_path, "tiny-multi", "multi-task", task_sampling="temperature",
                                task_temperature=4.0, datasets=entries))
    assert cfg.task_temperature == 4.0
