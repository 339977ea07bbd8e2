"""Scoring every (text, video) pair of a split, as retrieval evaluation does: each video encoded once
(`multi_clip_testing`: its tokens averaged over its clips, docs/original.md#multi-clip-testing), then only
the fusion encoder runs, over many texts per pass, and only the task's pair score (for LAVENDER the two
vocabulary rows "true"/"false" of the MLM head). Videos are split over processes; the score columns are
gathered."""
import numpy as np
import torch

from ..engine.precision import resolve_precision
from ..metrics import ranks_from_scores, retrieval_metrics
from .items import ItemDataset

__all__ = ["eval_precision", "encode_clips", "score_all_pairs", "score_columns"]


def eval_precision(cfg, device):
    """Precision of full retrieval evaluation: fp32 unless `precision` names one (the original evaluated in
    fp32; fp16 scores tie more often, and ties change R@K), whatever precision training used."""
    return "fp32" if cfg.precision == "auto" else resolve_precision(cfg, device)


def encode_clips(model, img):
    """Visual tokens of (B, T, 3, H, W) clips, or of (B, C, T, 3, H, W) with C clips per video
    (multi_clip_testing): each clip through the visual encoder, then the tokens averaged over the clips."""
    if img.dim() == 5:
        return model.encode_video(img)
    B, C = img.shape[:2]
    feat, mask = model.encode_video(img.flatten(0, 1))
    return feat.view(B, C, *feat.shape[1:]).mean(1), mask.view(B, C, -1)[:, 0]


def score_all_pairs(task, items, ctx, desc="retrieval"):
    """Score every (text, video) pair of `items` with `task.pair_scores` under the evaluation context `ctx`
    (lavender.engine.evaluation.EvalContext: model, processes, precision); returns (metrics, score
    matrix [texts, videos])."""
    cfg, model, device = task.cfg, ctx.model, ctx.device
    model.eval()
    videos = list(dict.fromkeys(it["video"] for it in items))
    vid2idx = {v: i for i, v in enumerate(videos)}
    gt = np.array([vid2idx[it["video"]] for it in items])
    txt, mask = (x.to(device) for x in task.encode_queries(items))

    multi = bool(cfg.multi_clip_testing)
    vds = ItemDataset([{"video": v} for v in videos], task.store, lambda *a: {}, train=False, seed=cfg.seed,
                      multi_clip=multi)
    # multi-clip: one video per batch (videos have different numbers of clips; its clips are one batch)
    loader = task.make_loader(vds, 1 if multi else max(1, min(8, cfg.size_batch)), ctx.dist, device)
    batches = ((b["index"].tolist(), b["img"]) for b in loader if b)
    pbar = ctx.progress(len(loader.sampler), f"{desc} ({len(items)} texts x {len(videos)} videos)")
    chunk = cfg.retrieval_text_batch or (512 if device.type == "cuda" else 64)
    with ctx.autocast():
        col_idx, cols = score_columns(task, model, batches, txt, mask, chunk, pbar)
    if pbar:
        pbar.close()
    scores = np.full((len(items), len(videos)), -np.inf, dtype=np.float32)
    for idx, cs in ctx.gather((col_idx, cols)):
        for i, c in zip(idx, cs):
            scores[:, i] = c
    t2v = ranks_from_scores(scores, gt)
    v2t = ranks_from_scores(scores.T, [np.nonzero(gt == v)[0] for v in range(len(videos))])
    metrics = retrieval_metrics(t2v)
    metrics.update(retrieval_metrics(v2t, prefix="v2t_"))
    metrics.update({"n_text": len(items), "n_video": len(videos)})
    return metrics, scores


@torch.no_grad()
def score_columns(task, model, video_batches, txt, mask, chunk, pbar=None):
    """Score columns for batches of (video indices, clips): each clip is encoded once, then fused
    with every text, `chunk` texts per pass. Returns (video indices, [score column per video])."""
    device = txt.device
    n_t = len(txt)
    emb = model.embed_text(txt, mask)  # text embeddings once for all videos
    col_idx, cols = [], []
    for index, img in video_batches:
        feats, fmasks = encode_clips(model, img.to(device))
        for b in range(len(feats)):
            col = torch.empty(n_t, device=device)
            for s in range(0, n_t, chunk):
                e = min(s + chunk, n_t)
                f = feats[b:b + 1].expand(e - s, -1, -1)
                m = fmasks[b:b + 1].expand(e - s, -1)
                col[s:e] = task.pair_scores(model, f, m, emb[s:e], mask[s:e]).float()
            cols.append(col.cpu().numpy())
            col_idx.append(int(index[b]))
            if pbar:
                pbar.update(1)
    return col_idx, cols
