"""Text-to-video retrieval finetuning (MSRVTT, DiDeMo, MSVD, LSMDC): video-text matching as
true/false at a [MASK]; validation by R@1/5/10 over all val pairs, best checkpoint kept.

    python main_retrieval_tsv.py --config _args/args_msrvtt-retrieval.json --path_output _snapshot
"""
from lavender.run import cli

if __name__ == "__main__":
    cli("retrieval")
