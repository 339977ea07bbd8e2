"""Retrieval ranks and recall@k from a score matrix."""
import numpy as np


def ranks_from_scores(scores, gt):
    """1-based rank of the ground-truth column for each row of `scores` [Q, N].

    `gt[q]` is the index of the correct column (an int) or a set/list of correct columns (the best
    ranked of them counts). Ties are broken pessimistically-stable: columns with a strictly higher
    score rank above; among equal scores, earlier columns rank above (as a stable sort does).
    """
    scores = np.asarray(scores, dtype=np.float64)
    ranks = np.empty(len(scores), dtype=np.int64)
    for q, row in enumerate(scores):
        targets = np.atleast_1d(np.asarray(gt[q]))
        best = None
        for t in targets:
            higher = (row > row[t]).sum()
            equal_before = (row[:t] == row[t]).sum()
            r = int(higher + equal_before) + 1
            best = r if best is None else min(best, r)
        ranks[q] = best
    return ranks


def retrieval_metrics(ranks, prefix=""):
    """R@1/5/10 (percent), median rank (`median_rank`, and `median_rank_int`: the original's MdR, the median
    truncated to an integer) and mean rank."""
    ranks = np.asarray(ranks)
    out = {f"{prefix}r@{k}": float(100.0 * (ranks <= k).mean()) for k in (1, 5, 10)}
    out[f"{prefix}median_rank"] = float(np.median(ranks))
    out[f"{prefix}median_rank_int"] = int(np.median(ranks))
    out[f"{prefix}mean_rank"] = float(ranks.mean())
    return out
