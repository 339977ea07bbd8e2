"""Open-ended video QA (TGIF-Frame, MSRVTT-QA, MSVD-QA, LSMDC-FiB) as masked language modelling.

    python main_qaoe_mlm.py --config _args/args_msrvtt-qa.json --path_output _snapshot [--path_ckpt X.pt]
"""
from lavender.run import cli

if __name__ == "__main__":
    cli("qaoe")
