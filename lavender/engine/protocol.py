"""What the engine needs from a task, declared: the protocol it calls, the step context it passes to a
training step, and the batch keys it reads. A task family implements `TaskProtocol` (lavender.tasks.base
gives the defaults); the engine never imports a task."""
from dataclasses import dataclass
from typing import Any, Dict, List, Optional, Protocol, Tuple

import torch

__all__ = ["BATCH_KEYS", "TARGETS", "StepContext", "Loader", "TaskProtocol"]

# The keys of a batch dict that the engine reads (tasks may add any others):
BATCH_KEYS = {
    "index": "per-example position in its dataset: evaluation merges the records of all processes by it",
    "video": "per-example video ids: named when a training loss is not finite",
    "task": "multi-task: the name of the member task the batch serves (set by MetaLoader)",
}

# A training step's stats may hold TARGETS: how many labelled positions its loss averages over. An optimizer
# step whose batches all report 0 (e.g. open-ended QA answers all out of vocabulary) updates nothing, as the
# original's NaN loss made its loss scaler skip the step (docs/differences.md#the-main-differences); counted
# in `n_empty_steps_tr`.
TARGETS = "n_targets"


@dataclass(frozen=True)
class StepContext:
    """Where a training step is in the run."""
    epoch: int = 1          # 1-based
    step: int = 0           # optimizer steps done before this batch
    total_steps: int = 1    # optimizer steps of the whole run (the learning-rate schedule's length)
    batches: int = 1        # training batches this task has served so far in the run, this one included


class Loader(Protocol):
    """Batches of one split for this process (lavender.engine.loader: EpochLoader, MetaLoader)."""

    pos: int

    def __len__(self) -> int: ...

    def set_epoch(self, epoch: int) -> None: ...

    def __iter__(self): ...

    def batches_served(self) -> int: ...

    def state_dict(self) -> dict: ...

    def load_state_dict(self, state: dict) -> None: ...


class TaskProtocol(Protocol):
    """The methods the engine calls (lavender.engine.trainer; heads and stores: lavender.run)."""

    eval_start: bool  # evaluate the starting weights (epoch 0) before training even without path_ckpt

    def heads(self) -> Dict[str, Optional[int]]:
        """The model heads the task needs: {name: outputs}, None for the MLM head `fc_mtm`."""

    def tracked_metrics(self) -> Dict[str, str]:
        """{label: metric}: val metrics whose best epoch is recorded ("" = the run's main metric)."""

    def eval_splits(self) -> List[str]:
        """The splits evaluated after each epoch."""

    def loader(self, split: str, dist, device: torch.device) -> Loader:
        """The batches of `split` for this process."""

    def train_step(self, model, batch: Dict[str, Any], step: StepContext) -> Tuple[torch.Tensor, Dict[str, Any]]:
        """(loss, {stat: float or 0-d tensor}) of one training batch; stats are averaged per epoch (TARGETS:
        read by the engine, see above)."""

    def evaluate(self, split: str, ctx) -> Tuple[Dict[str, float], Optional[list]]:
        """(metrics, predictions or None) of one split; `ctx`: lavender.engine.evaluation.EvalContext."""

    def stores(self) -> list:
        """The frame stores whose skipped videos (skip_bad) are reported at the end of a run."""

    def data_report(self) -> Dict[str, Dict[str, int]]:
        """{split: {name: n}}: what each split lost before training (e.g. n_truncated, n_invalid); log.json
        gets `{name}_{tr|vl|ts}` in every row."""
