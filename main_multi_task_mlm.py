"""Multi-task LAVENDER: one model and one MLM head trained on every task of the config's `datasets`
at once (retrieval, open-ended QA, multiple choice, captioning); `--head task_specific` gives the
multi-head baseline (the original's main_multi_task_multi_head.py).

    torchrun --nproc_per_node=8 main_multi_task_mlm.py --config _args/args_multi-task_all.json --path_output _snapshot
"""
from lavender.run import cli

if __name__ == "__main__":
    cli("multi-task")
