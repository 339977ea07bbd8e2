import numpy as np

from lavender.metrics import accuracy, ranks_from_scores, retrieval_metrics, topk_hits


def test_recall_and_ranks_on_a_hand_made_matrix():
    # rows = texts, columns = videos; text q belongs to video gt[q]
    s = np.array([[0.9, 0.1, 0.2, 0.3],    # gt 0 -> rank 1
                  [0.8, 0.7, 0.1, 0.0],    # gt 1 -> rank 2
                  [0.5, 0.6, 0.2, 0.9],    # gt 2 -> rank 4
                  [0.1, 0.2, 0.3, 0.4]])   # gt 3 -> rank 1
    ranks = ranks_from_scores(s, [0, 1, 2, 3])
    assert ranks.tolist() == [1, 2, 4, 1]
    m = retrieval_metrics(ranks)
    assert m["r@1"] == 50.0 and m["r@5"] == 100.0 and m["r@10"] == 100.0
    assert m["median_rank"] == 1.5 and m["mean_rank"] == 2.0
    # several correct columns: the best ranked counts (video -> text direction)
    assert ranks_from_scores(s.T, [[0, 1], [1], [2], [2, 3]]).tolist() == [1, 1, 3, 1]
    # ties: earlier columns rank above (stable order)
    assert ranks_from_scores(np.zeros((2, 3)), [0, 2]).tolist() == [1, 3]


def test_topk_hits_counts_invalid_labels_as_wrong():
    top = np.array([[3, 1, 2], [0, 5, 4], [7, 8, 9]])
    labels = np.array([3, 5, -1])
    assert topk_hits(top, labels, 1).tolist() == [1, 0, 0]
    assert topk_hits(top, labels, 2).tolist() == [1, 1, 0]
    assert accuracy([1, 0, 1]) == 2 / 3
    assert accuracy([1, 1], n_total=4) == 0.5
