"""Multiple-choice video QA: TGIF-Action/Transition (option digit at the [MASK]) and MSRVTT-MC /
LSMDC-MC (true/false per option), selected by the config's task (or `--mc_mode`).

    python main_qamc_mlm.py --config _args/args_tgif-action.json --path_output _snapshot [--path_ckpt X.pt]
"""
from lavender.run import cli

if __name__ == "__main__":
    cli("qamc")
