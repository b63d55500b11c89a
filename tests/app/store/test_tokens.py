"""Token batches, the multi-vector row store and segment files, against plain numpy."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from app.store.segments import load_segment, write_segment
from app.store.tokens import TokenBatch, TokenRows, read_token_chunks, write_token_files

D = 6
SPEC = "Muvera(k_sim=2,d_proj=4,r_reps=3,seed=1),Flat,MaxSim(candidates=8)"


def batch_of(sizes: list[int], seed: int = 0) -> tuple[TokenBatch, list[np.ndarray]]:
    rng = np.random.default_rng(seed)
    docs = [rng.standard_normal((t, D)).astype(np.float32) for t in sizes]
    offsets = np.concatenate([[0], np.cumsum(sizes)]).astype(np.int64)
    return TokenBatch(np.concatenate(docs), offsets), docs


def test_take_select_concat() -> None:
    batch, docs = batch_of([1, 3, 2, 4])
    assert len(batch) == 4
    for i, d in enumerate(docs):
        np.testing.assert_array_equal(batch.doc(i), d)
    picked = batch.take(np.array([3, 0]))
    assert [len(d) for d in picked.docs()] == [4, 1]
    np.testing.assert_array_equal(picked.doc(0), docs[3])
    kept = batch.select(np.array([False, True, False, True]))
    np.testing.assert_array_equal(kept.tokens, np.concatenate([docs[1], docs[3]]))
    np.testing.assert_array_equal(kept.offsets, [0, 3, 7])
    both = TokenBatch.concat([kept, picked], D)
    assert [len(d) for d in both.docs()] == [3, 4, 4, 1]
    empty = TokenBatch.concat([], D)
    assert len(empty) == 0 and empty.tokens.shape == (0, D)


def test_rows_search_is_exact_maxsim_with_tombstones() -> None:
    batch, docs = batch_of([2, 5, 1, 3], seed=1)
    rows = TokenRows(D)
    rows.add(np.array([10, 11, 12, 13]), batch)
    assert rows.remove(np.array([11])) == 1 and len(rows) == 3
    assert rows.tokens() == 6
    q, _ = batch_of([3], seed=2)
    res = rows.search(q, 4, None)
    want = {10: (q.doc(0) @ docs[0].T).max(1).sum(), 12: (q.doc(0) @ docs[2].T).max(1).sum()}
    want[13] = (q.doc(0) @ docs[3].T).max(1).sum()
    order = sorted(want, key=lambda i: -want[i])
    assert res.ids[0, :3].tolist() == order and res.ids[0, 3] == -1
    np.testing.assert_allclose(res.scores[0, :3], [want[i] for i in order], rtol=1e-5)


@pytest.mark.parametrize("max_rows", [1, 3, 7, 100])
def test_token_chunks_cut_at_document_boundaries(tmp_path: Path, max_rows: int) -> None:
    batch, docs = batch_of([2, 5, 1, 3, 4], seed=3)
    write_token_files(tmp_path, np.arange(5), batch)
    seen = []
    for a, b, rows in read_token_chunks(tmp_path / "tokens.npy", batch.offsets, max_rows):
        part = TokenBatch(rows, batch.offsets[a : b + 1] - batch.offsets[a])
        seen += part.docs()
    assert len(seen) == 5
    for got, want in zip(seen, docs, strict=True):
        np.testing.assert_array_equal(got, want)


def test_segment_round_trip_keeps_exact_tokens(tmp_path: Path) -> None:
    batch, docs = batch_of([2, 5, 1, 3, 4, 2, 2], seed=4)
    ids = np.arange(100, 107, dtype=np.int64)
    seg = write_segment(
        tmp_path, 1, SPEC.replace("seed=1", "store_dtype=float16,seed=1"), ids, batch
    )
    assert seg.meta["multivector"] is True and seg.meta["tokens"] == len(batch.tokens)
    assert seg.remove(np.array([101])) == 1
    loaded = load_segment(tmp_path / "00000001")
    assert isinstance(loaded.store, TokenRows) and loaded.store.dtype == "float16"
    np.testing.assert_array_equal(loaded.store.doc(3), docs[3])  # float32 from tokens.npy
    assert loaded.remove(np.array([101, 104])) == 2
    assert len(loaded.index) == 5 and len(loaded.store) == 5
