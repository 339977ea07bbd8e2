"""The one training loop. It knows a task only through the declared protocol (lavender.engine.protocol:
loader, train_step, evaluate, tracked_metrics, eval_splits) and delegates the run folder (`run_dir`), checkpoint files
(`checkpointing`), evaluation and the metric log (`evaluation`) to their own modules."""
import contextlib
import logging
import math
import os
import time
import warnings

import torch

from ..fileio import atomic_json
from . import dist as D
from .run_files import RESUME_FILE, RunFiles
from .tensorboard import EventWriter
from .evaluation import SPLIT_TAGS, EpochLog, EvalContext, to_device
from .host_memory import RetainedHeap
from .logs import StepLog, fmt_metrics, progress
from .optim import build_optimizer, build_scheduler
from .precision import autocast, resolve_precision
from .protocol import TARGETS, StepContext
from .rng import get_rng_state, set_rng_state
from .run_dir import discard_if_failed, find_resume, prepare_run_dir

log = logging.getLogger("lavender")


_SPLIT_OF_TAG = {"tr": "train", **{tag: split for split, tag in SPLIT_TAGS.items()}}


def event_tag(key):
    """A log.json key as a TensorBoard tag: 'ac_1_vl' -> 'val/ac_1', 'ls_tr' -> 'train/ls'."""
    base, _, tag = key.rpartition("_")
    return f"{_SPLIT_OF_TAG[tag]}/{base}" if base and tag in _SPLIT_OF_TAG else f"epoch/{key}"


class _Step(torch.nn.Module):
    """Lets DDP see the task's forward: DDP needs the forward to go through its own wrapper."""

    def __init__(self, model, task):
        super().__init__()
        self.model, self.task = model, task

    def forward(self, batch, step):
        return self.task.train_step(self.model, batch, step)


class RunningStats:
    """Losses and per-key stat sums of the current epoch (part of the resume state). Values stay on
    the device until they are read (logging steps, epoch end, resume saves): no host sync per step.
    A non-finite loss (fp16 steps the loss scaler skips) is kept as NaN and left out of the means."""

    def __init__(self, losses=(), sums=None, counts=None, skipped=0, empty=None):
        self.losses = [torch.tensor(float(x)) for x in losses]
        self.sums, self.counts = {k: torch.tensor(float(v)) for k, v in (sums or {}).items()}, dict(counts or {})
        self.skipped = skipped  # fp16: optimizer steps the loss scaler skipped (a device tensor until read)
        self.empty = empty  # optimizer steps without any target (None: the task reports no TARGETS)

    def add(self, loss, stats):
        """Record a step's loss and stats; returns whether the loss is finite (a device tensor)."""
        loss = loss.detach().float()
        finite = torch.isfinite(loss)
        self.losses.append(torch.where(finite, loss, torch.full_like(loss, float("nan"))))
        for k, v in stats.items():
            v = v.detach().float() if torch.is_tensor(v) else torch.tensor(float(v), device=loss.device)
            self.sums[k] = self.sums[k].to(v.device) + v if k in self.sums else v
            self.counts[k] = self.counts.get(k, 0) + 1
        return finite

    def _mean(self, losses):
        return torch.stack([x.to(losses[-1].device) for x in losses]).nanmean().item() if losses else float("nan")

    def recent(self, n):
        return self._mean(self.losses[-n:])

    def epoch_metrics(self):
        """`ls_tr` and `{stat}_tr`, averaged over this rank's batches, then over ranks."""
        out = {"ls_tr": D.all_reduce_mean(self._mean(self.losses))}
        for k in sorted(self.sums):
            out[f"{k}_tr"] = D.all_reduce_mean(self.sums[k].item() / self.counts[k])
        if self.empty is not None:
            out["n_empty_steps_tr"] = self.empty
        return out

    def state_dict(self):
        return {"losses": [x.item() for x in self.losses], "sums": {k: v.item() for k, v in self.sums.items()},
                "counts": self.counts, "skipped": int(self.skipped), "empty": self.empty}


class Trainer:
    """Train `task` on `model` for `cfg.size_epoch` epochs, evaluating after each (and before the first
    when starting from a checkpoint); `fit()` returns the `log.json` dict (on the main process)."""

    def __init__(self, cfg, task, model, dist_info):
        self.cfg, self.task, self.model, self.d = cfg, task, model, dist_info
        self.device = dist_info.device
        self.model.to(self.device)
        self.precision = resolve_precision(cfg, self.device)
        self.scaler = torch.amp.GradScaler(self.device.type, enabled=self.precision == "fp16")
        self.step_module = _Step(model, task)
        if dist_info.distributed:
            self.step_module = torch.nn.parallel.DistributedDataParallel(
                self.step_module, device_ids=[self.device.index] if self.device.type == "cuda" else None,
                find_unused_parameters=True)
        self.epoch, self.global_step = 1, 0
        self.running = RunningStats()
        self.grad_norm = None  # total gradient norm of the last update (a tensor), when max_grad_norm > 0
        self.train_loader = None
        # CPU: no page faults on every step's activations (see host_memory)
        self.heap = RetainedHeap() if self.device.type == "cpu" else None

    # ------------------------------------------------------------------ main entry
    def fit(self):
        cfg = self.cfg
        resume_file = find_resume(cfg)
        self.run_dir = prepare_run_dir(cfg, self.d, resume_file)
        with discard_if_failed(self.run_dir, self.d.main, lambda: bool(resume_file) or self.global_step > 0):
            return self._fit(resume_file)

    def _fit(self, resume_file):
        cfg = self.cfg
        self.files = RunFiles.from_config(self.run_dir, cfg, self.d.main)
        self.log = EpochLog(self.task.tracked_metrics(), self.run_dir, self.d.main)
        self.step_log = StepLog(self.run_dir, self.d.main)
        self.events = EventWriter(self.run_dir) if cfg.tensorboard and self.d.main else None
        # what the data lost before training (texts cut, items without a label), per split, in every row
        self.data_row = {f"{k}_{SPLIT_TAGS.get(split, 'tr' if split == 'train' else split)}": n
                         for split, counts in self.task.data_report().items() for k, n in counts.items()}
        if cfg.size_epoch > 0:
            self.train_loader = self.task.loader("train", self.d, self.device)
        steps_per_epoch = math.ceil(len(self.train_loader) / cfg.grad_accum) if self.train_loader else 0
        # the schedule spans the steps the run will take: warm-up and decay end where max_steps stops it
        total = steps_per_epoch * cfg.size_epoch
        self.max_iter = max(min(total, cfg.max_steps) if cfg.max_steps else total, 1)
        self.optimizer = build_optimizer(self.model, cfg)
        self.scheduler = build_scheduler(self.optimizer, self.max_iter)
        if resume_file:
            self.load_state_dict(RunFiles.load_resume(resume_file, trust=cfg.trust_checkpoint))
            self.step_log.trim(self.global_step)
            log.info("resumed from %s: epoch %d, batch %d, step %d", resume_file, self.epoch,
                     self.train_loader.pos if self.train_loader else 0, self.global_step)
        elif cfg.size_epoch == 0 or cfg.path_ckpt or self.task.eval_start:
            self.evaluate(0)  # zero-shot (or evaluation-only) run; captioning and multi-task always, as the original
        for epoch in range(self.epoch, cfg.size_epoch + 1):
            self.epoch = epoch
            train_metrics, stopped = self.train_epoch(epoch)
            improved = self.evaluate(epoch, train_metrics)
            self.files.save_weights(self.model, epoch, best="" in improved,
                                    has_best=self.log.best[""]["epoch"] is not None)
            self.epoch = epoch + 1
            self.files.save_resume(self.state_dict())
            if stopped:
                break
        if cfg.size_epoch > 0 and not cfg.keep_resume:
            self.files.remove_resume()
        self.log.report()
        D.barrier()
        return self.log.data

    # ------------------------------------------------------------------ training
    def train_epoch(self, epoch):
        cfg, loader = self.cfg, self.train_loader
        loader.set_epoch(epoch)
        if loader.pos == 0:
            self.running = RunningStats()
        self.step_module.train()
        pbar = progress(self.d.main, total=len(loader), initial=loader.pos, desc=f"train ep{epoch}")
        accum, stopped, bad, targets, t0 = 0, False, None, None, time.time()
        for batch in loader:
            if not batch:  # every sample of the batch was a skipped bad video (skip_bad)
                continue
            batch = to_device(batch, self.device)
            accum += 1
            last_micro = accum == cfg.grad_accum or loader.pos == len(loader)
            sync = contextlib.nullcontext()
            if self.d.distributed and not last_micro:
                sync = self.step_module.no_sync()
            with sync:
                step = StepContext(epoch, self.global_step, self.max_iter, loader.batches_served())
                with autocast(self.precision, self.device):
                    loss, stats = self.step_module(batch, step)
                n = stats.pop(TARGETS, None)  # None: this batch has targets (the task does not count them)
                targets = n if accum == 1 else (None if targets is None or n is None else targets + n)
                # fp16: a non-finite loss gives non-finite gradients, and the loss scaler skips that step
                # (as the original's DeepSpeed loss scaling did); counted in n_skipped_steps_tr
                self.scaler.scale(loss / cfg.grad_accum).backward()
            step_bad = ~self.running.add(loss, stats)
            bad = step_bad if accum == 1 else bad | step_bad
            if last_micro:
                # fp32/bf16: the one host sync of a step, after the backward pass has been queued, to stop
                # before a non-finite update reaches the weights (fp16: GradScaler.step checks instead)
                if not self.scaler.is_enabled() and bool(bad):
                    self._stop_non_finite(loss, epoch, batch)
                self._optimizer_step(empty=targets is not None and self._no_targets(targets))
                accum = 0
                if cfg.logging_steps and self.global_step % cfg.logging_steps == 0:
                    loss_now = self.running.recent(cfg.logging_steps)
                    self._log_step(epoch, loss_now, batch.get("task"))
                    if pbar:
                        pbar.set_postfix(loss=f"{loss_now:.4f}", lr=f"{self.scheduler.get_last_lr()[-1]:.2e}")
                if cfg.save_steps and self.global_step % cfg.save_steps == 0:
                    self.files.save_resume(self.state_dict())
            if pbar:
                pbar.update(1)
            if cfg.max_steps and self.global_step >= cfg.max_steps:
                stopped = True
                break
        if pbar:
            pbar.close()
        metrics = self.running.epoch_metrics()
        if self.scaler.is_enabled():
            metrics["n_skipped_steps_tr"] = int(self.running.skipped)
        log.info("epoch %d train: %s (%.1fs)", epoch, fmt_metrics(metrics), time.time() - t0)
        return metrics, stopped

    def _stop_non_finite(self, loss, epoch, batch):
        """fp32/bf16: a non-finite loss ends the run, saying where, after writing the resume state."""
        self.files.save_resume(self.state_dict())
        vids = list(batch.get("video") or [])
        raise FloatingPointError(
            f"loss is {loss.item()} at epoch {epoch}, step {self.global_step} (batch {self.train_loader.pos} of "
            f"the epoch, lr {self.scheduler.get_last_lr()[0]:.3g}), videos {vids[:8]}"
            f"{f' (+{len(vids) - 8} more)' if len(vids) > 8 else ''}. The resume state is written "
            f"({os.path.join(self.run_dir, RESUME_FILE)}, continuing after this batch): lower --lr, or check these "
            f"videos, and continue with --resume latest; --precision fp16 would skip such steps")

    def _no_targets(self, targets):
        """Whether no batch of this optimizer step, on any process, had a target (counted in the running stats)."""
        empty = D.all_reduce_mean(float(targets)) == 0
        self.running.empty = (self.running.empty or 0) + int(empty)
        return empty

    def _optimizer_step(self, empty=False):
        """One update; `empty` (no targets): none, as the original's loss scaler skipped its NaN loss, while the
        schedule advances as the original's did."""
        self.grad_norm = None
        if not empty:
            self._update()
        with warnings.catch_warnings():  # an empty first step: torch warns that no optimizer.step came first
            warnings.filterwarnings("ignore", "Detected call of `lr_scheduler.step")
            self.scheduler.step()
        self.optimizer.zero_grad(set_to_none=True)
        self.global_step += 1
        if self.heap is not None:
            self.heap.after_step()

    def _update(self):
        cfg = self.cfg
        if cfg.max_grad_norm > 0:
            self.scaler.unscale_(self.optimizer)
            # kept as a tensor: read (one host sync) only at logging steps
            self.grad_norm = torch.nn.utils.clip_grad_norm_(self.model.parameters(), cfg.max_grad_norm)
        self.scaler.step(self.optimizer)
        if self.scaler.is_enabled():
            # The scale drops exactly when the scaler found non-finite gradients and skipped the step.
            # Compared on the device (its `_scale` tensor; get_scale() would wait for the optimizer's
            # kernels twice per step), read at logging steps.
            before = self.scaler._scale.clone()
            self.scaler.update()
            self.running.skipped = self.running.skipped + (self.scaler._scale < before).sum()
        else:
            self.scaler.update()

    def _log_step(self, epoch, loss, task=None):
        """`loss`: the mean over the last logging_steps; `grad_norm` (before clipping) and `task` (multi-task:
        the member the batch served) are those of the step itself."""
        rec = {"epoch": epoch, "step": self.global_step, "loss": float(loss), "lr": self.scheduler.get_last_lr()}
        if self.grad_norm is not None:
            rec["grad_norm"] = float(self.grad_norm)
        if task is not None:
            rec["task"] = task
        if self.scaler.is_enabled():
            rec["n_skipped_steps"] = int(self.running.skipped)
        if self.device.type == "cuda":
            rec["max_mem_gb"] = torch.cuda.max_memory_allocated(self.device) / 2**30
        self.step_log.append(rec)
        if self.events:
            values = {f"train/{k}": v for k, v in rec.items() if k not in ("step", "epoch", "lr", "task")}
            self.events.scalars(self.global_step, {**values, "train/lr": max(rec["lr"])})

    # ------------------------------------------------------------------ evaluation
    def evaluate(self, epoch, train_metrics=None):
        """Evaluate every split, append one row to log.json; return the tracked labels that improved."""
        ctx = EvalContext(self.model, self.d, self.precision, self.run_dir, epoch)
        row = dict(train_metrics or {})
        for split in self.task.eval_splits():
            metrics, preds = self.task.evaluate(split, ctx)
            log.info("epoch %d %s%s: %s", epoch, split, " (zero-shot)" if epoch == 0 and self.cfg.size_epoch
                     else "", fmt_metrics(metrics))
            row.update({f"{k}_{SPLIT_TAGS.get(split, split)}": v for k, v in metrics.items()})
            if self.d.main and preds is not None:
                atomic_json({"epoch": epoch, "split": split, "metrics": metrics, "predictions": preds},
                            os.path.join(self.run_dir, f"predictions_{split}.json"))
        for k, n in self.data_row.items():
            row.setdefault(k, n)  # an evaluation's own count of the same name (n_invalid_vl) comes first
        if self.events:  # per epoch: x = the optimizer steps so far, as the per-step curves
            self.events.scalars(self.global_step, {event_tag(k): v for k, v in row.items()})
        return self.log.add(epoch, row)

    # ------------------------------------------------------------------ resume state
    def state_dict(self):
        """Everything a killed run needs to continue to the same result."""
        return {"model": self.model.state_dict(), "optimizer": self.optimizer.state_dict(),
                "scheduler": self.scheduler.state_dict(), "scaler": self.scaler.state_dict(),
                "epoch": self.epoch, "global_step": self.global_step, "rng": get_rng_state(),
                "loader": self.train_loader.state_dict() if self.train_loader else None,
                "running": self.running.state_dict(), "log": self.log.state_dict()}

    def load_state_dict(self, state):
        self.model.load_state_dict(state["model"])
        self.optimizer.load_state_dict(state["optimizer"])
        self.scheduler.load_state_dict(state["scheduler"])
        self.scaler.load_state_dict(state["scaler"])
        self.epoch, self.global_step = state["epoch"], state["global_step"]
        if self.train_loader and state["loader"]:
            self.train_loader.load_state_dict(state["loader"])
        self.running = RunningStats(**state["running"])
        self.log.load_state_dict(state["log"])
        set_rng_state(state["rng"])
