"""LAVENDER (CVPR 2023): video-language understanding as masked language modelling. The public API:

    import lavender
    log = lavender.train("_args/args_demo-qaoe.json", size_epoch=1)   # a config file or a dict, any key as keyword
    lavender.check("_args/args_msrvtt-qa.json")                       # the inputs it would miss, with their sources
    p = lavender.Predictor.from_checkpoint("RUN_DIR/ckpt_violet_demo-qa_best.pt")
    p.answer([p.read_video("clip.mp4")], "what color is the shape?")

docs/your-videos.md#from-python shows the whole example. The names are imported on first use (PEP 562),
so `import lavender` is cheap and pulls no torch.
"""
import importlib

__version__ = "0.1.0"
__all__ = ["train", "check", "Predictor", "__version__"]

_PUBLIC = {"train": "lavender.run", "check": "lavender.run", "Predictor": "lavender.inference"}


def __getattr__(name):
    if name in _PUBLIC:
        value = getattr(importlib.import_module(_PUBLIC[name]), name)
        globals()[name] = value
        return value
    raise AttributeError(f"module 'lavender' has no attribute {name!r}")


def __dir__():
    return sorted(list(globals()) + list(_PUBLIC))
