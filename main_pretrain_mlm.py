"""LAVENDER pretraining: masked language modelling + video-text matching as MLM, on video parts
(WebVid2.5M) and image parts (CC3M).

    python -m torch.distributed.launch --nproc_per_node=8 main_pretrain_mlm.py \
        --config _args/args_pretrain_webvid_cc.json --path_output _snapshot
"""
from lavender.run import cli

if __name__ == "__main__":
    cli("pretrain")
