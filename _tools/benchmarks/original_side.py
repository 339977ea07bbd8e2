"""One process of the side-by-side benchmark (`benchmark.py original`): time the steps of one side and write
them to the job's `out` file. Run as a script for the original's side, `python original_side.py JOB`: it
imports neither lavender nor this venv's transformers, so that the original gets the packages of
`original_deps` in the versions it was written for."""
from __future__ import annotations

import json
import os
import shlex
import sys
from pathlib import Path

# config type -> the original's script module, model class and agent class for it
ORIGINAL_CLASSES = {"qaoe": ("main_qaoe_mlm", "LAVENDER_QAOE_MLM", "Agent_QAOE_MLM")}
# Top-level packages the original imports but a training step never uses (image features, DeepSpeed, apex,
# tensorboard, progress bars, its config pretty-printer, ...): empty modules stand in for them.
STUBBED = ("apex", "bs4", "deepspeed", "deprecated", "ete3", "future", "ipdb", "progressbar", "psutil", "seaborn",
           "skimage", "tensorboardX", "yapf")


def run_side(job_file, make_step) -> dict:
    """Load the job and its batch, build the step with `make_step(job, batch)` (which may say what it built
    in `job["about"]`), time `job["steps"]` steps."""
    import resource
    import time

    import torch

    from lavender.fileio import atomic_json  # standard library only: nothing the original's packages clash with

    job = json.loads(Path(job_file).read_text())
    batch = torch.load(job["batch_file"], weights_only=True)  # tensors and strings, written by the parent
    step = make_step(job, batch)
    times = []
    for i in range(job["steps"]):
        t0 = time.perf_counter()
        step()
        times.append(time.perf_counter() - t0)
        print(f"{job['side']} step {i + 1}: {times[-1]:.2f} s", flush=True)
    res = {"side": job["side"], "about": job.get("about", ""), "steps_s": times, "threads": torch.get_num_threads(),
           "max_rss_gb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20}
    atomic_json(res, job["out"])
    return res


def original_step(job, batch):
    """The original's model and agent for the config, built by its own code; returns one step of its training."""
    import importlib
    import inspect

    import torch

    sys.path[:0] = [p for p in (job["original_deps"], job["original"]) if p]
    sys.meta_path.insert(0, _Stubs())
    if not hasattr(inspect, "getargspec"):  # removed in Python 3.11; its agent calls it on every step
        inspect.getargspec = inspect.getfullargspec
    # On the CPU, `.cuda()` leaves a tensor or module where it is (its model, batch and loss call it).
    torch.Tensor.cuda = lambda self, *a, **k: self
    torch.nn.Module.cuda = lambda self, *a, **k: self
    import transformers

    # No model hub here: bert-base-uncased's shapes (BertConfig's defaults) with random weights, as ours.
    transformers.AutoModel.from_pretrained = lambda *a, **k: transformers.BertModel(transformers.BertConfig())
    transformers.AutoModelForMaskedLM.from_pretrained = \
        lambda *a, **k: transformers.BertForMaskedLM(transformers.BertConfig())
    transformers.AutoConfig.from_pretrained = lambda *a, **k: transformers.BertConfig()
    os.chdir(job["original"])  # it reads its Swin configs from relative paths
    script, model_cls, agent_cls = ORIGINAL_CLASSES[job["type"]]
    sys.argv = [f"{script}.py", "--config", job["config"], *shlex.split(job["override"])]
    mod = importlib.import_module(script)
    from utils.args import get_args  # the original's, importable once its script is

    args = get_args()
    args.size_vocab = -1  # as its script sets before building the model
    args.vis_backbone_init = "random"  # no Kinetics weights here; random, as ours
    args.max_iter = 10**6  # its schedule's length (what its data loader would give)
    tok = transformers.BertTokenizer(job["vocab"], do_lower_case=True)
    torch.manual_seed(0)
    model = getattr(mod, model_cls)(args, tokzr=tok)
    model.cuda()
    agent = getattr(mod, agent_cls)(args, model)
    model.train()
    ob = {"img": batch["img"], "txt": batch["txt"], "mask": batch["mask"], "mask_ans": batch["labels"]}
    job["about"] = (f"its own code, transformers {transformers.__version__}, use_checkpoint {args.use_checkpoint} "
                    f"(fairscale's wrapper), max_grad_norm {args.max_grad_norm}")
    return lambda: agent.step(agent.prepare_batch(ob), True)


class _Stubs:
    """Import finder that answers the `STUBBED` packages with empty modules (any attribute: None)."""

    def find_spec(self, name, path=None, target=None):
        import importlib.machinery

        if name.split(".")[0] in STUBBED:
            return importlib.machinery.ModuleSpec(name, self, is_package=True)
        return None

    def create_module(self, spec):
        import types

        m = types.ModuleType(spec.name)
        m.__path__ = []
        m.__getattr__ = lambda attr: None
        return m

    def exec_module(self, module):
        pass


if __name__ == "__main__":
    # This folder, first on the path of a script, holds profile.py, which would shadow the standard library's.
    if sys.path and Path(sys.path[0] or ".").resolve() == Path(__file__).resolve().parent:
        del sys.path[0]
    # lavender (for its file writing) last on the path: the original's checkout, put first, has scripts of
    # the same names as this repository's main_*.py.
    sys.path.append(str(Path(__file__).resolve().parents[2]))
    run_side(sys.argv[1], original_step)
