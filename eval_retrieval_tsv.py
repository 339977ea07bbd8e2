"""Full retrieval evaluation: every (text, video) pair of the test split, every test item a query.
Writes scores_test.npy (texts x videos) and metrics.json (t2v and v2t R@1/5/10, MdR, MnR).

    python eval_retrieval_tsv.py --config _args/args_msrvtt-retrieval.json --path_ckpt X.pt
    torchrun --nproc_per_node 4 eval_retrieval_tsv.py --config ... --path_ckpt X.pt
"""
import sys

from lavender.cli import main_guard
from lavender.engine.run import session
from lavender.engine.run_dir import prepare_run_dir
from lavender.tasks.retrieval import evaluate_checkpoint


def main(argv):
    with session("retrieval", argv, overrides={"size_epoch": 0, "eval_splits": ["test"]},
                 all_queries=True) as (cfg, d, task, model):
        cfg.path_output = prepare_run_dir(cfg, d, what="eval")
        evaluate_checkpoint(cfg, task, model, d, split="test")
    return 0


if __name__ == "__main__":
    sys.exit(main_guard(main))
