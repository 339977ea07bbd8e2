"""Accuracy over predictions, with examples that have no valid label counted as wrong."""
import numpy as np


def topk_hits(top_ids, labels, k=1):
    """Per-example 1/0: label among the first k of `top_ids` [N, >=k] (ranked predictions).
    labels < 0 (no valid label, e.g. an out-of-vocabulary answer) count as wrong."""
    top_ids, labels = np.asarray(top_ids), np.asarray(labels)
    if top_ids.ndim == 1:
        top_ids = top_ids[:, None]
    hit = (top_ids[:, :k] == labels[:, None]).any(1)
    return np.where(labels >= 0, hit, False).astype(np.float64)


def accuracy(correct, n_total=None):
    """Mean of a 0/1 vector; with `n_total`, over that many examples (missing ones count as wrong)."""
    correct = np.asarray(correct, dtype=np.float64)
    denom = len(correct) if n_total is None else n_total
    return float(correct.sum() / max(denom, 1))
