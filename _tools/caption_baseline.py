"""The video-blind captioning baseline of a config: the most frequent training caption predicted for every
video of a split, scored with the metrics and references `main_caption.py` uses.

    python _tools/caption_baseline.py --config _args/args_demo-cap.json [--split test] [--caption_meteor false]

Any config key may be overridden as for the main scripts (e.g. `--data_dir`). Prints one JSON line:
{"split", "caption", "n_videos", "metrics"}.
"""
import argparse
import json
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from lavender.run import main_guard  # noqa: E402
from lavender.errors import ConfigError  # noqa: E402
from lavender.config import load_config  # noqa: E402
from lavender.data.caption_data import split_inputs  # noqa: E402
from lavender.data.video_folder import VideoFolderStore  # noqa: E402
from lavender.preflight import MissingInputs  # noqa: E402
from lavender.tasks.caption import blind_baseline, load_split  # noqa: E402


def main(argv=None):
    ap = argparse.ArgumentParser(add_help=False)
    ap.add_argument("--split", default="test", choices=("val", "test"))
    known, rest = ap.parse_known_args(argv)
    cfg = load_config(rest)
    yamls = {"train": cfg.train_yaml, known.split: cfg.val_yaml if known.split == "val" else cfg.test_yaml}
    missing = [f"{s}_yaml" for s, y in yamls.items() if not y]
    if missing:
        raise ConfigError(f"{cfg.config}: needs {' and '.join(missing)}")
    missing = [i for y in yamls.values() for i in split_inputs(y, cfg.data_dir, with_img=not cfg.video_dir)
               if not i.exists()]
    if missing:  # the preflight: every missing file at once, with where it comes from
        raise MissingInputs(missing, cfg.config)
    store = VideoFolderStore(cfg.video_dir, cfg.size_frame, cfg.size_img) if cfg.video_dir else None
    train, split = (load_split(cfg, yamls[s], store) for s in ("train", known.split))
    caption, metrics = blind_baseline(train, split, meteor=cfg.caption_meteor)
    print(json.dumps({"split": known.split, "caption": caption, "n_videos": len(split.keys), "metrics": metrics}))
    return 0


if __name__ == "__main__":
    sys.exit(main_guard(main))
