"""celltext quickstart: pbmc3k (601 cells bundled in assets/) -> gene embeddings with MiniLM ->
GenePT-w cell embeddings -> cosine KNN cell-type accuracy.

    python python/examples/quickstart.py [--model models-local/all-MiniLM-L6-v2] [--plot out.png]

Run from the repository root after `bash scripts/setup.sh` and `pip install ./python`.
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import anndata as ad

import celltext

REPO = Path(__file__).resolve().parents[2]

parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
parser.add_argument("--model", default=str(REPO / "models-local" / "all-MiniLM-L6-v2"))
parser.add_argument("--store", default=None, help="keep the gene store here (resumable)")
parser.add_argument("--plot", default=None, help="save a UMAP of the embedding (needs scanpy)")
parser.add_argument("--quiet", action="store_true", help="no progress bars")
args = parser.parse_args()

adata = ad.read_h5ad(REPO / "assets" / "data" / "pbmc3k_demo.h5ad")
print(adata)

# 1. gene embeddings: the summaries of the genes some cell ranks in its top 100
t = time.perf_counter()
genes = celltext.genes.top_genes(adata, 100, layer="counts")
store = celltext.genes.embed(args.model, genes=genes, out=args.store, progress=not args.quiet)
print(f"{store} from {len(genes)} top-100 genes in {time.perf_counter() - t:.1f} s")

# 2. GenePT-w: expression-weighted average of each cell's top-100 gene vectors
t = time.perf_counter()
celltext.tl.genept_w(adata, store, layer="counts")
print(
    f"obsm['X_celltext_genept_w'] {adata.obsm['X_celltext_genept_w'].shape} in "
    f"{time.perf_counter() - t:.2f} s; mean expression on mapped genes "
    f"{adata.obs['celltext_genept_w_coverage'].mean():.1%}"
)

# 3. cosine KNN, stratified 80/20 split (seed 0)
m = celltext.tl.knn_classify(adata, "label", use_rep="X_celltext_genept_w", k=10)
print(
    f"KNN (k=10) on {m['n_samples']} test cells: accuracy {m['accuracy']:.3f}, "
    f"macro F1 {m['macro_f1']:.3f}, kappa {m['cohen_kappa']:.3f}"
)
print(adata.obs[["label", "celltext_knn_pred", "celltext_knn_conf", "celltext_knn_split"]].head())

if args.plot:
    try:
        import scanpy as sc
    except ImportError:
        print("scanpy is not installed: no plot")
    else:
        sc.pp.neighbors(adata, use_rep="X_celltext_genept_w", random_state=0)
        sc.tl.umap(adata, random_state=0)
        fig = sc.pl.umap(adata, color=["label", "celltext_knn_pred"], return_fig=True, show=False)
        fig.savefig(args.plot, dpi=100, bbox_inches="tight")
        print(f"wrote {args.plot}")
