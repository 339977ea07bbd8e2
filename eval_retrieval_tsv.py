"""Full retrieval evaluation: every (text, video) pair of the test split, every test item a query.
Writes scores_test.npy (texts x videos) and metrics.json (t2v and v2t R@1/5/10, MdR, MnR).

    python eval_retrieval_tsv.py --config _args/args_msrvtt-retrieval.json --path_ckpt X.pt
    torchrun --nproc_per_node 4 eval_retrieval_tsv.py --config ... --path_ckpt X.pt
"""
import json
import logging
import os
import sys

from lavender.engine.evaluation import EvalContext
from lavender.engine.run_dir import prepare_run_dir
from lavender.errors import ConfigError
from lavender.fileio import atomic_json
from lavender.run import main_guard, session
from lavender.tasks.retrieval_scoring import eval_precision

log = logging.getLogger("lavender")


def evaluate_checkpoint(cfg, task, model, dist_info, split="test"):
    """Every item of `split` is a query; writes scores_{split}.npy + metrics.json into cfg.path_output."""
    model.to(dist_info.device)
    precision = eval_precision(cfg, dist_info.device)
    log.info("full retrieval evaluation in %s%s", precision, ", multi-clip testing" if cfg.multi_clip_testing else "")
    metrics, _ = task.evaluate(split, EvalContext(model, dist_info, precision, cfg.path_output))
    if dist_info.main:
        res = {split: metrics, "retrieval_score": cfg.retrieval_score, "checkpoint": cfg.path_ckpt,
               "size_frame": cfg.size_frame, "size_img": cfg.size_img,
               "multi_clip_testing": bool(cfg.multi_clip_testing), "precision": precision}
        atomic_json(res, os.path.join(cfg.path_output, "metrics.json"))
        log.info("%s: %s", split, json.dumps({k: round(v, 2) if isinstance(v, float) else v
                                               for k, v in metrics.items()}))
    return metrics


def needs_checkpoint(cfg):
    """Recalls of untrained weights mean nothing: the evaluation is of a trained checkpoint."""
    if not cfg.path_ckpt:
        raise ConfigError("eval_retrieval_tsv.py evaluates a trained checkpoint: give --path_ckpt (e.g. a run's "
                          "ckpt_violet_*_best.pt); without one the scores are those of untrained weights")


def main(argv):
    with session("retrieval", argv, overrides={"size_epoch": 0, "eval_splits": ["test"]}, check=needs_checkpoint,
                 all_queries=True) as (cfg, d, task, model):
        cfg.path_output = prepare_run_dir(cfg, d, what="eval")
        evaluate_checkpoint(cfg, task, model, d, split="test")
    return 0


if __name__ == "__main__":
    sys.exit(main_guard(main))
