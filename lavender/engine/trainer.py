"""The one train/eval loop every entry script uses. It knows tasks only through their interface
(`lavender.tasks.base.Task`): datasets, collate, train_step, eval_step, summarize."""
import contextlib
import glob
import json
import logging
import math
import os
import shutil
import time

import numpy as np
import torch
from torch.utils.data import DataLoader

from ..config import save_config
from ..fileio import atomic_json, atomic_torch_save as atomic_save
from ..data.collate import seed_worker
from . import dist as D
from .logs import fmt_metrics as _fmt, progress, setup_logging
from .optim import build_optimizer, build_scheduler
from .precision import autocast, resolve_precision
from .rng import get_rng_state as _get_rng, set_rng_state as _set_rng
from .sampler import ShardSampler

log = logging.getLogger("lavender")


def to_device(batch, device):
    if torch.is_tensor(batch):
        return batch.to(device, non_blocking=True)
    if isinstance(batch, dict):
        return {k: to_device(v, device) for k, v in batch.items()}
    if isinstance(batch, (list, tuple)):
        return type(batch)(to_device(v, device) for v in batch)
    return batch


class _Step(torch.nn.Module):
    """Lets DDP see the task's forward: DDP needs the forward to go through its own wrapper."""

    def __init__(self, model, task):
        super().__init__()
        self.model, self.task = model, task

    def forward(self, batch):
        return self.task.train_step(self.model, batch)


class Trainer:
    def __init__(self, cfg, task, model, dist_info):
        self.cfg, self.task, self.model, self.d = cfg, task, model, dist_info
        self.device = dist_info.device
        self.model.to(self.device)
        self.precision = resolve_precision(cfg, self.device)
        self.scaler = torch.amp.GradScaler("cuda", enabled=self.precision == "fp16")
        self.step_module = _Step(model, task)
        if dist_info.distributed:
            self.step_module = torch.nn.parallel.DistributedDataParallel(
                self.step_module, device_ids=[self.device.index] if self.device.type == "cuda" else None,
                find_unused_parameters=True)
        self.loaders = {}
        self.log_data = {}
        self.epoch, self.global_step, self.start_in_epoch = 1, 0, 0
        self.best = {"value": -math.inf, "epoch": None}
        self._losses, self._stats_sum = [], {}        # running sums of the current epoch (resume state)
        self._partial, self._pending_rng, self.resume_file = ([], {}), None, None

    # ------------------------------------------------------------------ set-up
    def make_loader(self, split):
        ds = self.task.datasets[split]
        train = split == "train"
        bs = self.cfg.size_batch if train or not self.cfg.size_batch_eval else self.cfg.size_batch_eval
        sampler = ShardSampler(len(ds), self.d.rank, self.d.world, shuffle=train, seed=self.cfg.seed,
                               segments=getattr(ds, "segments", None), batch=bs)
        workers = self.cfg.n_workers
        return DataLoader(ds, batch_size=bs, sampler=sampler, num_workers=workers,
                          collate_fn=self.task.collate, pin_memory=self.device.type == "cuda",
                          drop_last=False, persistent_workers=False,
                          worker_init_fn=seed_worker if workers else None)

    def prepare_output(self):
        cfg = self.cfg
        run_dir = None
        if cfg.resume:
            run_dir = self._find_resume_dir()
        if run_dir is None:
            stamp = D.broadcast_object(time.strftime("%Y%m%d%H%M%S"))  # one name on every rank
            run_dir = os.path.join(cfg.path_output, f"_{cfg.task}_{stamp}")
        self.run_dir = run_dir
        if self.d.main:
            os.makedirs(run_dir, exist_ok=True)
            save_config(cfg, os.path.join(run_dir, "args.json"))
            setup_logging(cfg.log_level, True, os.path.join(run_dir, "stdout.txt"))
        D.barrier()
        log.info("output: %s", run_dir)

    def _find_resume_dir(self):
        r = self.cfg.resume
        if r == "latest":
            cands = sorted(glob.glob(os.path.join(self.cfg.path_output, f"_{self.cfg.task}_*", "resume.pt")),
                           key=os.path.getmtime)
            if not cands:
                log.warning("--resume latest: no resume.pt under %s; starting fresh", self.cfg.path_output)
                return None
            r = cands[-1]
        elif os.path.isdir(r):
            r = os.path.join(r, "resume.pt")
        if not os.path.isfile(r):
            raise FileNotFoundError(f"--resume: no resume state at {r}")
        self.resume_file = r
        return os.path.dirname(r)

    # ------------------------------------------------------------------ main entry
    def fit(self):
        cfg = self.cfg
        self.prepare_output()
        if cfg.size_epoch > 0:
            self.loaders["train"] = self.make_loader("train")
        for split in self.eval_splits():
            self.loaders[split] = self.make_loader(split)
        steps_per_epoch = math.ceil(len(self.loaders["train"]) / cfg.grad_accum) if cfg.size_epoch > 0 else 0
        self.max_iter = max(steps_per_epoch * cfg.size_epoch, 1)
        self.optimizer = build_optimizer(self.model, cfg)
        self.scheduler = build_scheduler(self.optimizer, self.max_iter)
        if self.resume_file:
            self._load_resume(self.resume_file)

        if cfg.size_epoch == 0 or (cfg.path_ckpt and self.epoch == 1 and self.start_in_epoch == 0):
            self.evaluate_all(epoch=0)  # zero-shot (or evaluation-only) run
        for epoch in range(self.epoch, cfg.size_epoch + 1):
            self.epoch = epoch
            train_metrics, stopped = self.train_epoch(epoch)
            is_best = self.evaluate_all(epoch, train_metrics)
            self.save_epoch(epoch, is_best)
            if stopped:
                break
        self._report_best()
        D.barrier()
        return self.log_data

    def eval_splits(self):
        return [s for s in self.cfg.eval_splits if s in self.task.datasets]

    # ------------------------------------------------------------------ training
    def autocast(self):
        return autocast(self.precision, self.device)

    def train_epoch(self, epoch):
        cfg, loader = self.cfg, self.loaders["train"]
        ds = self.task.datasets["train"]
        if hasattr(ds, "set_epoch"):
            ds.set_epoch(epoch)
        loader.sampler.set_epoch(epoch, self.start_in_epoch * cfg.size_batch)
        self.step_module.train()
        total = self.start_in_epoch + len(loader)  # batches in the whole epoch
        pbar = progress(self.d.main, total=total, initial=self.start_in_epoch, desc=f"train ep{epoch}")
        # a resumed epoch continues the running sums of the interrupted one
        losses, stats_sum = self._partial if self.start_in_epoch else ([], {})
        self._losses, self._stats_sum, t0 = losses, stats_sum, time.time()
        accum, b_in_epoch, stopped = 0, self.start_in_epoch, False
        batches = iter(loader)  # creating it draws from the RNG: restore a resumed state after that
        if self.start_in_epoch and self._pending_rng is not None:
            _set_rng(self._pending_rng)
            self._pending_rng = None
        self.start_in_epoch = 0
        for batch in batches:
            if not batch:  # every sample of the batch was a skipped bad video (skip_bad)
                b_in_epoch += 1
                continue
            batch = to_device(batch, self.device)
            accum += 1
            last_micro = accum == cfg.grad_accum or b_in_epoch + 1 == total
            sync = contextlib.nullcontext()
            if self.d.distributed and not last_micro:
                sync = self.step_module.no_sync()
            with sync:
                with self.autocast():
                    loss, stats = self.step_module(batch)
                if not torch.isfinite(loss):
                    raise FloatingPointError(
                        f"loss is {loss.item()} at epoch {epoch}, step {self.global_step} "
                        f"(lr {self.scheduler.get_last_lr()[0]:.3g}); lower --lr or use fp32")
                self.scaler.scale(loss / cfg.grad_accum).backward()
            b_in_epoch += 1
            losses.append(loss.item())
            for k, v in stats.items():
                stats_sum[k] = stats_sum.get(k, 0.0) + float(v)
            if last_micro:
                self._optimizer_step()
                accum = 0
                if cfg.save_steps and self.global_step % cfg.save_steps == 0:
                    self._save_resume(epoch, b_in_epoch)
            if pbar:
                pbar.update(1)
                pbar.set_postfix(loss=f"{np.mean(losses[-20:]):.4f}", lr=f"{self.scheduler.get_last_lr()[-1]:.2e}")
            if self.d.main and cfg.logging_steps and self.global_step and last_micro \
                    and self.global_step % cfg.logging_steps == 0:
                self._log_step(epoch, np.mean(losses[-cfg.logging_steps:]))
            if cfg.max_steps and self.global_step >= cfg.max_steps:
                stopped = True
                break
        if pbar:
            pbar.close()
        n = max(len(losses), 1)
        metrics = {"ls_tr": D.all_reduce_mean(float(np.mean(losses)) if losses else float("nan"))}
        for k, v in stats_sum.items():
            metrics[f"{k}_tr"] = D.all_reduce_mean(v / n)
        log.info("epoch %d train: %s (%.1fs)", epoch, _fmt(metrics), time.time() - t0)
        return metrics, stopped

    def _optimizer_step(self):
        cfg = self.cfg
        if cfg.max_grad_norm > 0:
            self.scaler.unscale_(self.optimizer)
            torch.nn.utils.clip_grad_norm_(self.model.parameters(), cfg.max_grad_norm)
        self.scaler.step(self.optimizer)
        self.scaler.update()
        self.scheduler.step()
        self.optimizer.zero_grad(set_to_none=True)
        self.global_step += 1

    def _log_step(self, epoch, loss):
        rec = {"epoch": epoch, "step": self.global_step, "loss": float(loss),
               "lr": self.scheduler.get_last_lr()}
        if self.device.type == "cuda":
            rec["max_mem_gb"] = torch.cuda.max_memory_allocated(self.device) / 2**30
        with open(os.path.join(self.run_dir, "log_steps.jsonl"), "a") as f:
            f.write(json.dumps(rec) + "\n")

    # ------------------------------------------------------------------ evaluation
    @torch.no_grad()
    def evaluate(self, split):
        """Metrics of one split: every example once, gathered over ranks, in dataset order."""
        self.model.eval()
        custom = getattr(self.task, "evaluate_split", None)
        if custom is not None:
            return custom(self, split)
        loader = self.loaders[split]
        records = []
        for batch in progress(self.d.main, iterable=loader, desc=f"eval {split}", leave=False) or loader:
            if not batch:
                continue
            batch = to_device(batch, self.device)
            with self.autocast():
                out = self.task.eval_step(self.model, batch)
            records.append({k: (v.detach().float().cpu().numpy() if torch.is_tensor(v) and v.is_floating_point()
                                else v.detach().cpu().numpy() if torch.is_tensor(v) else np.asarray(v))
                            for k, v in out.items()})
        merged = merge_records(D.all_gather_object(records))
        metrics = self.task.summarize(merged, split)
        preds = self.task.predictions(merged, split)
        return metrics, preds

    def evaluate_all(self, epoch, train_metrics=None):
        """Evaluate every split, append one row to log.json; True when val's main metric is the best yet."""
        tag = {"val": "vl", "test": "ts"}
        row = dict(train_metrics or {})
        for split in self.eval_splits():
            metrics, preds = self.evaluate(split)
            log.info("epoch %d %s%s: %s", epoch, split, " (zero-shot)" if epoch == 0 and self.cfg.size_epoch
                     else "", _fmt(metrics))
            for k, v in metrics.items():
                row[f"{k}_{tag.get(split, split)}"] = v
            if self.d.main and preds is not None:
                atomic_json({"epoch": epoch, "split": split, "metrics": metrics, "predictions": preds},
                            os.path.join(self.run_dir, f"predictions_{split}.json"))
        if self.d.main:
            self.log_data.setdefault("epoch", []).append(epoch)
            for k, v in row.items():
                self.log_data.setdefault(k, []).append(v)
            atomic_json(self.log_data, os.path.join(self.run_dir, "log.json"))
        main_key = f"{self.task.main_metric}_vl"
        if main_key in row and row[main_key] > self.best["value"]:
            self.best = {"value": row[main_key], "epoch": epoch}
            return True
        return False

    def _report_best(self):
        if not self.d.main or "epoch" not in self.log_data:
            return
        for tag in ("vl", "ts"):
            key = f"{self.task.main_metric}_{tag}"
            if key in self.log_data:
                vals = self.log_data[key]
                i = int(np.argmax(vals))
                log.info("best %s %s = %.4f @ epoch %d", "val" if tag == "vl" else "test", self.task.main_metric,
                         vals[i], self.log_data["epoch"][i])

    # ------------------------------------------------------------------ checkpoints
    def save_epoch(self, epoch, is_best=False):
        if self.d.main:
            sd = {k: v.detach().cpu() for k, v in self.model.state_dict().items()}
            path = os.path.join(self.run_dir, f"ckpt_violet_{self.cfg.task}_{epoch}.pt")
            atomic_save(sd, path)
            if is_best:  # a file copy, not a second serialisation
                best = os.path.join(self.run_dir, f"ckpt_violet_{self.cfg.task}_best.pt")
                shutil.copyfile(path, best + ".tmp")
                os.replace(best + ".tmp", best)
            log.info("saved %s%s", path, " (best so far)" if is_best else "")
        self._save_resume(epoch + 1, 0)

    def _save_resume(self, epoch, batch_in_epoch):
        """Full state: continue at `epoch`, after `batch_in_epoch` batches of it."""
        if not self.d.main:
            return
        state = {"model": self.model.state_dict(), "optimizer": self.optimizer.state_dict(),
                 "scheduler": self.scheduler.state_dict(), "scaler": self.scaler.state_dict(),
                 "epoch": epoch, "batch_in_epoch": batch_in_epoch, "global_step": self.global_step,
                 "rng": _get_rng(), "log": self.log_data, "best": self.best,
                 "partial": (self._losses, self._stats_sum) if batch_in_epoch else ([], {})}
        atomic_save(state, os.path.join(self.run_dir, "resume.pt"))

    def _load_resume(self, path):
        state = torch.load(path, map_location="cpu", weights_only=False)
        self.model.load_state_dict(state["model"])
        self.optimizer.load_state_dict(state["optimizer"])
        self.scheduler.load_state_dict(state["scheduler"])
        self.scaler.load_state_dict(state["scaler"])
        self.epoch, self.start_in_epoch = state["epoch"], state["batch_in_epoch"]
        self.global_step, self.log_data, self.best = state["global_step"], state["log"], state["best"]
        self._partial = state["partial"]
        if self.start_in_epoch:
            self._pending_rng = state["rng"]
        else:
            _set_rng(state["rng"])
        log.info("resumed from %s: epoch %d, batch %d, step %d", path, self.epoch, self.start_in_epoch,
                 self.global_step)


# ---------------------------------------------------------------------- helpers
def merge_records(per_rank):
    """Concatenate per-batch record dicts from all ranks, sorted by example index, duplicates dropped."""
    batches = [b for rank in per_rank for b in rank]
    if not batches:
        return {}
    merged = {k: np.concatenate([np.asarray(b[k]) for b in batches]) for k in batches[0]}
    if "index" in merged:
        _, first = np.unique(merged["index"], return_index=True)
        merged = {k: v[first] for k, v in merged.items()}
    return merged


