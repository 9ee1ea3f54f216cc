#!/usr/bin/env python3
"""Leave-one-out cosine k-NN accuracy of embeddings over every cell: each cell's label predicted
by majority vote of its k nearest other cells (ties to the label whose nearest voter is closest).
Less noisy than one 80/20 split (every cell is a test cell once), for telling a real accuracy gap
from split noise (docs/scilama.md, "Integration").

  python3 scripts/knn_loo.py --h5ad CELLS.h5ad --label cell_line [--by COL ...] [--k 10] [--metric euclidean] EMB.npy ...

Prints one line per embedding: accuracy and wrong cells, then for each --by column (e.g. the
batch, or demuxlet's singlet/doublet call) the wrong cells and the accuracy within each of its
values. Needs numpy, scikit-learn, anndata.
"""
import argparse

import numpy as np


def loo_knn(x, labels, k=10, metric="cosine"):
    """Predicted label of every cell from its k nearest other cells (cosine distance, or `metric`)."""
    from sklearn.neighbors import NearestNeighbors

    x = np.asarray(x, dtype=np.float64)
    labels = np.asarray(labels)
    nn = NearestNeighbors(n_neighbors=k + 1, metric=metric, algorithm="brute").fit(x)
    dist, idx = nn.kneighbors(x)
    pred = np.empty(len(labels), dtype=labels.dtype)
    for i in range(len(labels)):
        keep = idx[i] != i
        near, d = idx[i][keep][:k], dist[i][keep][:k]
        votes, first = {}, {}
        for j, dj in zip(near, d):
            votes[labels[j]] = votes.get(labels[j], 0) + 1
            first.setdefault(labels[j], dj)
        top = max(votes.values())
        pred[i] = min((first[c], c) for c, v in votes.items() if v == top)[1]
    return pred


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--h5ad", required=True)
    p.add_argument("--label", required=True)
    p.add_argument("--by", action="append", default=[], metavar="COL",
                   help="break the wrong cells down by this obs column (repeatable)")
    p.add_argument("--k", type=int, default=10)
    p.add_argument("--metric", default="cosine", help="cosine (celltext classify's) or euclidean")
    p.add_argument("emb", nargs="+")
    a = p.parse_args()
    import anndata as ad

    obs = ad.read_h5ad(a.h5ad, backed="r").obs
    y = obs[a.label].astype(str).to_numpy()
    for f in a.emb:
        pred = loo_knn(np.load(f), y, a.k, a.metric)
        wrong = pred != y
        line = f"{f}: {a.metric} {a.k}-NN leave-one-out accuracy {1 - wrong.mean():.4f} ({wrong.sum()} of {len(y)} wrong)"
        for col in a.by:
            line += f"; by {col}: " + ", ".join(
                f"{v} {w} of {n} wrong ({1 - w / n:.4f})" for v, w, n in breakdown(wrong, obs[col].astype(str).to_numpy()))
        print(line)


def breakdown(wrong, groups):
    """(value, wrong cells, cells) for each value of a per-cell column, in sorted value order."""
    return [(v, int((wrong & (groups == v)).sum()), int((groups == v).sum())) for v in np.unique(groups)]


if __name__ == "__main__":
    main()
