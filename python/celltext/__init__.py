"""celltext in Python: text encoders as single-cell biology instruments, on AnnData in memory.

The numbers come from the same Rust library as the ``celltext`` command line, so
``tl.genept_w`` equals ``celltext cells embed`` and ``Encoder.embed`` equals ``celltext embed``
bit for bit. Functions follow scanpy's conventions: ``tl`` tools take an AnnData, write into it
(``obsm[key_added]``, ``obs[...]``, ``uns[...]``) and return None unless ``copy=True``; ``pl``
functions draw with matplotlib and return the axes. Messages go through :mod:`logging`
(``celltext.settings.verbosity``), progress bars through tqdm (``progress=False`` silences).

>>> import anndata as ad, celltext
>>> adata = ad.read_h5ad("assets/data/pbmc3k_demo.h5ad")
>>> store = celltext.genes.embed("models-local/all-MiniLM-L6-v2",
...                              genes=celltext.genes.top_genes(adata, 100, layer="counts"))
>>> celltext.tl.genept_w(adata, store, layer="counts")
>>> celltext.tl.knn_classify(adata, "label", use_rep="X_celltext_genept_w")["accuracy"]
"""

from . import genes, metrics, pl, tl
from ._celltext import version as _version
from ._encoder import Encoder
from ._settings import settings
from .genes import GeneStore

__version__ = _version().split(" ")[-1]

__all__ = ["Encoder", "GeneStore", "genes", "metrics", "pl", "settings", "tl", "__version__"]
