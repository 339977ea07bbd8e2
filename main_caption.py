"""Video captioning (MSRVTT, MSVD) as masked language modelling with a seq2seq mask; greedy or beam decoding,
COCO caption metrics (BLEU, METEOR, ROUGE-L, CIDEr).

    python main_caption.py --config _args/args_msrvtt-cap.json --path_output _snapshot [--path_ckpt X.pt]
"""
from lavender.run import cli

if __name__ == "__main__":
    cli("captioning")
