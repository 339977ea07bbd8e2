"""Process group set-up for `torch.distributed.launch`, `torchrun` (single/multi node) and plain python."""
import datetime
import os

import torch
import torch.distributed as dist


class DistInfo:
    def __init__(self, rank=0, world=1, local_rank=0, device=torch.device("cpu")):
        self.rank, self.world, self.local_rank, self.device = rank, world, local_rank, device

    @property
    def main(self):
        return self.rank == 0

    @property
    def distributed(self):
        return self.world > 1


def init_distributed(device=None):
    """Initialise from the launcher's environment (RANK/WORLD_SIZE/LOCAL_RANK); NCCL on GPU, gloo on CPU."""
    world = int(os.environ.get("WORLD_SIZE", "1"))
    rank = int(os.environ.get("RANK", "0"))
    local_rank = int(os.environ.get("LOCAL_RANK", "0"))
    use_cuda = torch.cuda.is_available() and device != "cpu"
    dev = torch.device("cuda", local_rank) if use_cuda else torch.device("cpu")
    if use_cuda:
        torch.cuda.set_device(dev)
    if world > 1 and not dist.is_initialized():
        dist.init_process_group("nccl" if use_cuda else "gloo", init_method="env://",
                                timeout=datetime.timedelta(hours=5))
    return DistInfo(rank, world, local_rank, dev)


def barrier():
    if dist.is_available() and dist.is_initialized():
        dist.barrier()


def all_gather_object(obj):
    """List with every rank's `obj` (just [obj] when not distributed)."""
    if not (dist.is_available() and dist.is_initialized()):
        return [obj]
    out = [None] * dist.get_world_size()
    dist.all_gather_object(out, obj)
    return out


def broadcast_object(obj, src=0):
    if not (dist.is_available() and dist.is_initialized()):
        return obj
    box = [obj]
    dist.broadcast_object_list(box, src=src)
    return box[0]


def all_reduce_mean(value):
    """Average a float over ranks."""
    if not (dist.is_available() and dist.is_initialized()):
        return float(value)
    t = torch.tensor([float(value)], dtype=torch.float64)
    if dist.get_backend() == "nccl":
        t = t.cuda()
    dist.all_reduce(t)
    return float(t.item()) / dist.get_world_size()


def cleanup():
    if dist.is_available() and dist.is_initialized():
        dist.destroy_process_group()
