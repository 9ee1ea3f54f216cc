"""Type stubs of the compiled module `celltext._celltext` (use the `celltext` package)."""

from os import PathLike
from typing import Callable, List, Optional, Tuple, Union

import numpy as np
import numpy.typing as npt

_Index = npt.NDArray[Union[np.int32, np.int64]]
# Called with (done, total) between batches; the package draws its tqdm bar from it.
_Progress = Optional[Callable[[int, int], None]]

GENEPT_S_PREFIX: str

def version() -> str: ...

class Encoder:
    def __init__(
        self,
        model: str,
        device: str = "cpu",
        dtype: str = "f32",
        backend: str = "auto",
        max_length: Optional[int] = None,
        lowercase: Optional[bool] = None,
        progress: bool = True,
    ) -> None: ...
    def embed(
        self,
        texts: List[str],
        pooling: Optional[str] = None,
        normalize: bool = False,
        batch_tokens: int = 8192,
        progress: _Progress = None,
    ) -> npt.NDArray[np.float32]: ...
    def count_tokens(self, text: str) -> int: ...
    @property
    def info_json(self) -> str: ...
    @property
    def dim(self) -> int: ...
    @property
    def warnings(self) -> List[str]: ...

class GeneStore:
    @staticmethod
    def load(path: Union[str, PathLike[str]]) -> "GeneStore": ...
    @staticmethod
    def from_arrays(genes: List[str], vectors: npt.NDArray[np.float32]) -> "GeneStore": ...
    @property
    def genes(self) -> List[str]: ...
    @property
    def vectors(self) -> npt.NDArray[np.float32]: ...
    @property
    def dim(self) -> int: ...
    @property
    def manifest_json(self) -> Optional[str]: ...
    def __len__(self) -> int: ...

def genes_embed(
    model: str,
    out: str,
    species: str = "human",
    summaries: Optional[str] = None,
    dataset_genes: Optional[List[str]] = None,
    missing: str = "skip",
    batch_tokens: int = 8192,
    chunk_texts: int = 512,
    device: str = "cpu",
    dtype: str = "f32",
    backend: str = "auto",
    progress: _Progress = None,
) -> str: ...
def bundled_summaries(species: str) -> Tuple[List[str], List[str], List[str]]: ...
def map_genes(
    store: GeneStore,
    genes: List[str],
    species: str = "human",
    orthologs: bool = False,
    indptr: Optional[_Index] = None,
    indices: Optional[_Index] = None,
    data: Optional[npt.NDArray[np.float32]] = None,
    n_rows: int = 0,
) -> Tuple[List[int], str]: ...
def genept_w(
    indptr: _Index,
    indices: _Index,
    data: npt.NDArray[np.float32],
    n_rows: int,
    cell_ids: List[str],
    genes: List[str],
    store: GeneStore,
    field: str = "X",
    species: str = "human",
    orthologs: bool = False,
    aggregation: str = "weighted",
    weights: str = "expr",
    top_n: str = "100",
) -> Tuple[
    npt.NDArray[np.float32],
    npt.NDArray[np.float32],
    npt.NDArray[np.uint64],
    npt.NDArray[np.bool_],
    str,
]: ...
def cell_sentences(
    indptr: _Index,
    indices: _Index,
    data: npt.NDArray[np.float32],
    n_rows: int,
    cell_ids: List[str],
    genes: List[str],
    field: str = "X",
    max_genes: Optional[int] = None,
    ties_stable: bool = False,
    seed: int = 0,
    template: Optional[str] = None,
    ablation: str = "none",
    encoder: Optional[Encoder] = None,
) -> Tuple[List[str], Optional[str]]: ...
def top_n_genes(
    indptr: _Index,
    indices: _Index,
    data: npt.NDArray[np.float32],
    n_rows: int,
    genes: List[str],
    n: int,
) -> List[str]: ...
def knn_classify(
    x: npt.NDArray[np.float32],
    labels: List[str],
    label_key: str,
    k: int = 10,
    vote: str = "majority",
    test_fraction: float = 0.2,
    seed: int = 0,
) -> Tuple[List[str], npt.NDArray[np.float32], List[str], str]: ...
def mlp_classify(
    xs: List[Tuple[str, npt.NDArray[np.float32]]],
    labels: List[str],
    label_key: str,
    fusion: str = "concat",
    hidden: List[int] = ...,
    dropout: float = 0.1,
    lr: float = 1e-3,
    weight_decay: float = 1e-2,
    epochs: int = 200,
    patience: int = 10,
    batch_size: int = 64,
    val_fraction: float = 0.1,
    class_weights: bool = False,
    test_fraction: float = 0.2,
    seed: int = 0,
) -> Tuple[List[str], npt.NDArray[np.float32], List[str], str]: ...
def classification_report(y_true: List[str], y_pred: List[str]) -> str: ...
def scilama_train(
    indptr: _Index,
    indices: _Index,
    data: npt.NDArray[np.float32],
    n_rows: int,
    cell_ids: List[str],
    genes: List[str],
    stores: List[Tuple[str, GeneStore]],
    obs: List[Tuple[str, Union[npt.NDArray[np.float64], List[str]]]],
    config: str,
    batch_keys: List[str],
    covariate_keys: List[str],
    species: str = "human",
    orthologs: bool = False,
    hvg: int = 2000,
    gene_input: str = "store",
    device: str = "cpu",
    model_path: Optional[str] = None,
    progress: _Progress = None,
) -> Tuple[
    npt.NDArray[np.float32], List[str], List[str], Optional[npt.NDArray[np.float32]], str
]: ...
