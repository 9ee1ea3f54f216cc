"""The other-batch neighbour fraction of scripts/integration_eval.py (docs/scilama.md,
"Integration") against hand-computed cases: cosine distance (so vector length must not matter),
the cell itself excluded by index (so a duplicate cell in another batch counts), and the
random-mixing expectation."""

from __future__ import annotations

import numpy as np
import pytest
from conftest import load_script


@pytest.fixture(scope="module")
def ev():
    return load_script("integration_eval")


def on_circle(degrees, radii):
    t = np.radians(degrees)
    return np.stack([np.cos(t), np.sin(t)], 1) * np.asarray(radii, dtype=float)[:, None]


def test_other_batch_fraction_hand_computed_cosine(ev):
    # Angles 0, 10, 20 | 90, 100, 110 degrees; batches A A B | B A B; k = 2 nearest by angle:
    # 0°: 10°(A) 20°(B) → 1/2;  10°: 0°(A) 20°(B) → 1/2;  20°: 10°(A) 0°(A) → 1;
    # 90°: 100°(A) 110°(B) → 1/2;  100°: 90°(B) 110°(B) → 1;  110°: 100°(A) 90°(B) → 1/2.
    # Mean 4/6; lengths differ but only angles count.
    x = on_circle([0, 10, 20, 90, 100, 110], [5, 1, 1, 3, 1, 2])
    batch = np.array(["A", "A", "B", "B", "A", "B"])
    assert ev.other_batch_fraction(x, batch, k=2) == pytest.approx(4 / 6, abs=1e-12)


def test_other_batch_fraction_is_cosine_not_euclidean(ev):
    # k = 1. Angles: (1, 0) 0°, (10, 1) 5.7°, (1, 0.5) 26.6°, (0, 1) 90°; batches A B A B.
    # Cosine: 0°→5.7°(B), 5.7°→0°(A), 26.6°→5.7°(B), 90°→26.6°(A): all other-batch, 1.
    # Euclidean would pair (1, 0) with (1, 0.5) (same batch, both ways), (10, 1) with
    # (1, 0.5) and (0, 1) with (1, 0.5): 2 of 4, 0.5.
    x = np.array([[1.0, 0.0], [10.0, 1.0], [1.0, 0.5], [0.0, 1.0]])
    batch = np.array(["A", "B", "A", "B"])
    assert ev.other_batch_fraction(x, batch, k=1) == 1.0


def test_duplicate_cells_in_other_batches_are_neighbours(ev):
    # Each cell has an exact duplicate in the other batch: its one nearest other cell is that
    # duplicate, so the fraction is 1 (dropping the first neighbour by position could drop the
    # duplicate and keep the cell itself, giving less).
    x = np.array([[1.0, 0.0], [1.0, 0.0], [0.0, 1.0], [0.0, 1.0]])
    batch = np.array([0, 1, 0, 1])
    assert ev.other_batch_fraction(x, batch, k=1) == 1.0
    # One batch only: no neighbour is from another batch.
    assert ev.other_batch_fraction(x, np.zeros(4), k=3) == 0.0


def test_random_mixing_fraction_hand_computed(ev):
    # Batches A A B: an A cell's other cells are A, B (1/2), the B cell's are A, A (1): mean 2/3.
    assert ev.random_mixing_fraction(["A", "A", "B"]) == pytest.approx(2 / 3, abs=1e-12)


def test_k_must_leave_a_neighbour(ev):
    with pytest.raises(ValueError, match="k = 4 for 4 cells"):
        ev.other_batch_fraction(np.eye(4), np.arange(4), k=4)


def test_leave_one_out_knn_hand_computed():
    """scripts/knn_loo.py: each cell voted by its k nearest *other* cells; a tie goes to the label
    whose nearest voter is closest (then the smaller label). Angles 0, 10, 20, 30 (A A B B) and
    90 (B), k = 2, cosine: 0° ← 10°(A), 20°(B): tie, A nearer → A;  10° ← 0°(A), 20°(B) both 10°
    away → A;  20° ← 10°(A), 30°(B) both 10° away → A;  30° ← 20°(B), 10°(A): B nearer → B;
    90° ← 30°(B), 20°(B) → B. Lengths differ but only angles count."""
    mod = load_script("knn_loo")
    x = on_circle([0, 10, 20, 30, 90], [1, 2, 1, 3, 1])
    pred = mod.loo_knn(x, np.array(["A", "A", "B", "B", "B"]), k=2)
    assert pred.tolist() == ["A", "A", "A", "B", "B"]
    # k = 1 is the nearest other cell's label
    pred = mod.loo_knn(x, np.array(["A", "A", "B", "B", "B"]), k=1)
    assert pred.tolist()[3:] == ["B", "B"]
    wrong = np.array([False, True, True, False, False])
    assert mod.breakdown(wrong, np.array(["DBL", "SNG", "DBL", "SNG", "SNG"])) == [("DBL", 1, 2), ("SNG", 1, 3)]


def _write_set(root, folder, n_genes, demux, lines):
    ad = pytest.importorskip("anndata")
    import pandas as pd

    d = root / "cells" / folder
    d.mkdir(parents=True)
    rng = np.random.default_rng(len(demux))
    x = rng.poisson(2.0, size=(len(demux), n_genes)).astype(np.float32)
    obs = pd.DataFrame({"cell_line": lines, "demuxlet_cls": demux},
                       index=[f"{folder}_{i}" for i in range(len(demux))])
    var = pd.DataFrame(index=[f"G{j}" for j in range(n_genes)])
    ad.AnnData(X=x, obs=obs, var=var).write_h5ad(d / "data.h5ad")
    return x


def test_singlet_sets_drop_demuxlet_doublets_and_keep_rows_in_order(ev, tmp_path):
    xa = _write_set(tmp_path, "cellbench_celseq2_3cl", 5, ["SNG", "DBL", "SNG", "SNG"], ["A", "B", "C", "A"])
    xb = _write_set(tmp_path, "cellbench_dropseq_3cl", 4, ["DBL", "SNG", "DBL"], ["B", "C", "A"])
    full = ev.load_dataset(str(tmp_path), "cellbench_pair")
    sng = ev.load_dataset(str(tmp_path), "cellbench_pair_sng")
    assert full.n_obs == 7 and sng.n_obs == 4
    # inner join on the 4 shared genes; the singlets are rows 0, 2, 3 of CEL-seq2 and row 1 of Drop-seq
    want = np.vstack([xa[[0, 2, 3], :4], xb[[1], :4]])
    np.testing.assert_array_equal(sng.X.toarray(), want)
    assert list(sng.obs["platform"]) == ["CEL-seq2"] * 3 + ["Drop-seq"]
    assert list(sng.obs["cell_line"]) == ["A", "C", "A", "C"]
    assert list(full.obs["demuxlet_cls"]) == ["SNG", "DBL", "SNG", "SNG", "DBL", "SNG", "DBL"]


def test_singlet_set_without_a_demuxlet_column_is_refused(ev, tmp_path):
    ad = pytest.importorskip("anndata")
    import pandas as pd

    d = tmp_path / "cells" / "cellbench_celseq2_5cl"
    d.mkdir(parents=True)
    obs = pd.DataFrame({"cell_line": ["A", "B"], "batch": ["p1", "p2"]}, index=["c0", "c1"])
    ad.AnnData(X=np.ones((2, 3), np.float32), obs=obs).write_h5ad(d / "data.h5ad")
    with pytest.raises(SystemExit, match="demuxlet_cls"):
        ev.load_dataset(str(tmp_path), "cellbench_5cl_sng")


def test_scilama_rows_train_with_their_flags(ev):
    """Each sciLaMA row's `scilama train` flags, the batch column put in for BATCH."""
    tail = {m: ev.scilama_command("ct", "d.h5ad", "S", "human", 1, "o.npy", m, "platform")[14:] for m in ev.SCILAMA_FLAGS}
    assert tail == {"scilama": [], "scilama-batch": ["--batch-key", "platform"],
                    "scilama-bvae": ["--mode", "beta-vae"],
                    "scilama-bvae-batch": ["--mode", "beta-vae", "--batch-key", "platform"]}
    assert ev.scilama_command("ct", "d.h5ad", "S", "mouse", 2, "o.npy", "scilama", "b") == [
        "ct", "--quiet", "scilama", "train", "-i", "d.h5ad", "--genes", "S", "--species", "mouse", "--seed", "2", "-o", "o.npy"]
    assert set(ev.SCILAMA_FLAGS) <= set(ev.METHODS)
