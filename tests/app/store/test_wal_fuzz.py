"""Property tests for WAL recovery on hypothesis-generated logs.

``test_wal.py`` damages one fixed log (single bit flips, short bursts, torn last records);
here the log itself is generated (upserts, deletes and token upserts of random sizes, rolled
into several files) and so is the damage: truncation at any byte of any file, any number of
bit flips anywhere, spliced-in or cut-out byte ranges. Whatever the damage, opening and
replaying never raise, replay yields exactly a prefix of the acknowledged records (never a
modified one), and the repaired log takes new records that survive a reopen. The one
exception, whole records lost at the end of an earlier file, is a known limitation pinned by
an xfail test. ``decode`` is fuzzed on its own too (the checksum keeps damaged bodies from
reaching it, so only a writer bug or another version could feed it garbage), and so is a
collection opening on a damaged log.
"""

from __future__ import annotations

import json
import shutil
import struct
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import orjson
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from support import fuzz_settings

from app.collection import Collection
from app.config import Settings
from app.search import Query, search
from app.store.catalog import CollectionConfig
from app.store.wal import (
    DELETE,
    HEADER,
    TOKENS_UPSERT,
    UPSERT,
    Record,
    WriteAheadLog,
    decode,
    encode_delete,
    encode_tokens_upsert,
    encode_upsert,
)

SETTINGS = fuzz_settings(100)


# Durability is not what these tests check, and fsyncs were most of their run time.
pytestmark = pytest.mark.usefixtures("no_fsync")


@dataclass(frozen=True)
class Spec:
    """One acknowledged record: what it was encoded from, and its bytes."""

    kind: int
    ids: np.ndarray
    vectors: np.ndarray | None
    offsets: np.ndarray | None
    meta: dict[str, Any]

    def body(self) -> bytes:
        if self.kind == UPSERT:
            assert self.vectors is not None
            return encode_upsert(self.ids, self.vectors, self.meta)
        if self.kind == TOKENS_UPSERT:
            assert self.vectors is not None and self.offsets is not None
            return encode_tokens_upsert(self.ids, self.vectors, self.offsets, self.meta)
        return encode_delete(self.ids, self.meta)

    def matches(self, rec: Record) -> bool:
        """Bit-exact equality (vectors compared as uint32, so NaN payloads count)."""
        if rec.kind != self.kind or rec.meta != self.meta:
            return False
        if rec.ids.dtype != np.int64 or not np.array_equal(rec.ids, self.ids):
            return False
        if (rec.vectors is None) != (self.vectors is None):
            return False
        if self.vectors is not None:
            assert rec.vectors is not None
            if rec.vectors.shape != self.vectors.shape or not np.array_equal(
                rec.vectors.view(np.uint32), self.vectors.view(np.uint32)
            ):
                return False
        if (rec.offsets is None) != (self.offsets is None):
            return False
        return self.offsets is None or np.array_equal(rec.offsets, self.offsets)


json_scalars = st.none() | st.booleans() | st.integers(-(2**53), 2**53) | st.text(max_size=6)


@st.composite
def specs(draw: st.DrawFn) -> Spec:
    kind = draw(st.sampled_from([UPSERT, DELETE, TOKENS_UPSERT]))
    n = draw(st.integers(0, 4))
    ids = np.array(draw(st.lists(st.integers(-(2**63), 2**63 - 1), min_size=n, max_size=n)))
    ids = ids.astype(np.int64).reshape(n)
    keys = draw(st.lists(json_scalars, min_size=n, max_size=n))
    meta: dict[str, Any] = {"keys": keys}
    if kind == DELETE:
        return Spec(kind, ids, None, None, meta)
    meta["payloads"] = draw(
        st.lists(st.none() | st.dictionaries(st.text(max_size=4), json_scalars, max_size=3)).map(
            lambda p: (p + [None] * n)[:n]
        )
    )
    dim = draw(st.integers(1, 4))
    if kind == UPSERT:
        rows, offsets = n, None
    else:
        lengths = draw(st.lists(st.integers(1, 3), min_size=n, max_size=n))
        offsets = np.concatenate([[0], np.cumsum(lengths, dtype=np.int64)]).astype(np.int64)
        rows = int(offsets[-1])
    # Arbitrary float32 bit patterns: NaNs with payloads, infinities, subnormals, -0.0.
    bits = draw(st.lists(st.integers(0, 2**32 - 1), min_size=rows * dim, max_size=rows * dim))
    vectors = np.array(bits, dtype=np.uint32).reshape(rows, dim).view(np.float32)
    return Spec(kind, ids, vectors, offsets, meta)


@dataclass(frozen=True)
class Log:
    """A generated log: its records and where each file starts and each record lies."""

    specs: list[Spec]
    rolls: frozenset[int]  # roll after these seqs

    def files(self) -> list[tuple[str, list[tuple[int, int]]]]:
        """``[(file name, [(start, end) of each record])]``, computed from the specs."""
        out: list[tuple[str, list[tuple[int, int]]]] = []
        spans: list[tuple[int, int]] = []
        first, pos = 1, 0
        for seq, spec in enumerate(self.specs, start=1):
            size = HEADER.size + len(spec.body())
            spans.append((pos, pos + size))
            pos += size
            if seq in self.rolls or seq == len(self.specs):
                out.append((f"{first:020d}.wal", spans))
                spans, first, pos = [], seq + 1, 0
        return out

    def write(self, path: Path) -> dict[str, bytes]:
        wal = WriteAheadLog(path)
        for seq, spec in enumerate(self.specs, start=1):
            assert wal.append(spec.body()) == seq
            if seq in self.rolls:
                wal.roll()
        wal.close()
        files = {p.name: p.read_bytes() for p in sorted(path.glob("*.wal"))}
        assert [(n, len(b)) for n, b in files.items()] == [
            (n, spans[-1][1]) for n, spans in self.files()
        ]
        return files

    def record_at(self, file_no: int, byte: int) -> int:
        """0-based index (= seq - 1) of the record holding ``byte`` of file ``file_no``."""
        lay = self.files()
        before = sum(len(spans) for _, spans in lay[:file_no])
        return before + next(k for k, (s, e) in enumerate(lay[file_no][1]) if s <= byte < e)


@st.composite
def logs(draw: st.DrawFn, min_records: int = 2) -> Log:
    records = draw(st.lists(specs(), min_size=min_records, max_size=7))
    rolls = draw(st.frozensets(st.integers(1, len(records) - 1), max_size=3))
    return Log(records, rolls)


@contextmanager
def damaged(files: dict[str, bytes], changes: dict[str, bytes]) -> Iterator[Path]:
    """A fresh log directory holding ``files`` with ``changes`` written over them."""
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "wal"
        path.mkdir()
        for name, data in {**files, **changes}.items():
            (path / name).write_bytes(data)
        yield path


def replay(path: Path) -> tuple[WriteAheadLog, list[Record]]:
    wal = WriteAheadLog(path)
    return wal, list(wal.replay())


def assert_recovers(path: Path, log: Log, survivors: int | None, fresh: list[Spec]) -> None:
    """Replay yields records 1..``survivors`` unmodified (when ``survivors`` is None: some
    records, each unmodified under the seq it was written with, in order); a second replay
    yields the same and changes no file; ``fresh`` records appended now follow after a reopen.
    """
    wal, recs = replay(path)
    seqs = [r.seq for r in recs]
    if survivors is not None:
        assert seqs == list(range(1, survivors + 1))
    assert seqs == sorted(set(seqs))
    for rec in recs:
        assert 1 <= rec.seq <= len(log.specs)
        assert log.specs[rec.seq - 1].matches(rec), f"record {rec.seq} surfaced modified"
    assert wal.last_seq == (seqs[-1] if seqs else 0)

    before = {p.name: p.read_bytes() for p in sorted(path.iterdir())}
    wal, again = replay(path)
    assert [r.seq for r in again] == seqs
    assert {p.name: p.read_bytes() for p in sorted(path.iterdir())} == before

    first = wal.last_seq + 1
    for seq, spec in enumerate(fresh, start=first):
        assert wal.append(spec.body()) == seq
    wal.close()
    _, final = replay(path)
    assert [r.seq for r in final] == seqs + list(range(first, first + len(fresh)))
    for rec, spec in zip(final[len(recs) :], fresh, strict=True):
        assert spec.matches(rec)


# ---- truncation -----------------------------------------------------------------------------


def _locate(log: Log, files: dict[str, bytes], where: float) -> tuple[int, int]:
    """``where`` in [0, 1] of all the log's bytes as (file number, byte in that file)."""
    lay = log.files()
    at = int(where * sum(len(b) for b in files.values()))
    file_no = 0
    while file_no < len(lay) - 1 and at >= len(files[lay[file_no][0]]):
        at -= len(files[lay[file_no][0]])
        file_no += 1
    return file_no, at


@SETTINGS
@given(log=logs(), where=st.floats(0, 1), fresh=st.lists(specs(), min_size=1, max_size=3))
def test_truncation_at_any_byte(log: Log, where: float, fresh: list[Spec]) -> None:
    """A file cut anywhere inside a record (a torn append, a lost tail) keeps exactly the
    records wholly before the cut; later files are set aside."""
    with tempfile.TemporaryDirectory() as tmp:
        files = log.write(Path(tmp))
    lay = log.files()
    file_no, at = _locate(log, files, where)
    name, spans = lay[file_no]
    ends = {end for _, end in spans}
    # A cut on a record boundary of an earlier file loses whole records without a trace: see
    # test_whole_records_lost_at_the_end_of_an_earlier_file.
    last_file = file_no == len(lay) - 1
    if not last_file and (at == 0 or at in ends):
        at = max(0, at - 1) if at else 1  # move the cut inside a record instead
    kept = sum(len(s) for _, s in lay[:file_no]) + sum(end <= at for _, end in spans)
    with damaged(files, {name: files[name][:at]}) as path:
        assert_recovers(path, log, kept, fresh)


@pytest.mark.xfail(
    strict=True,
    reason="known limitation: a file that lost whole records at its end looks complete, and "
    "files name only their first seq, so replay cannot tell the gap from the deliberate seq "
    "jump a collection makes after a repair; the next file's records are replayed past it",
)
def test_whole_records_lost_at_the_end_of_an_earlier_file(tmp_path: Path) -> None:
    log = Log([_plain(k) for k in range(4)], frozenset({2}))  # files: 1..2, 3..4
    files = log.write(tmp_path / "src")
    name, spans = log.files()[0]
    with damaged(files, {name: files[name][: spans[0][1]]}) as path:  # record 2 is gone
        assert_recovers(path, log, 1, [])


def _plain(k: int) -> Spec:
    return Spec(DELETE, np.array([k], np.int64), None, None, {"keys": [k]})


# ---- bit flips ------------------------------------------------------------------------------


@SETTINGS
@given(
    log=logs(),
    flips=st.lists(st.floats(0, 1, exclude_max=True), min_size=1, max_size=8),
    fresh=st.lists(specs(), min_size=1, max_size=2),
)
def test_bit_flips_anywhere(log: Log, flips: list[float], fresh: list[Spec]) -> None:
    """Any set of flipped bits, in any files: replay stops at the first damaged record.

    (Headers are damaged too: a flipped magic, length or seq ends the scan just as a bad
    checksum does. Flips that cancel out on the same bit are no damage.)"""
    with tempfile.TemporaryDirectory() as tmp:
        files = log.write(Path(tmp))
    lay = log.files()
    sizes = [len(files[name]) for name, _ in lay]
    data = {name: bytearray(files[name]) for name, _ in lay}
    for f in flips:
        bit = int(f * 8 * sum(sizes))
        file_no = 0
        while bit >= 8 * sizes[file_no]:
            bit -= 8 * sizes[file_no]
            file_no += 1
        data[lay[file_no][0]][bit // 8] ^= 1 << (bit % 8)
    first_bad = len(log.specs)
    for file_no, (name, _) in enumerate(lay):
        changed = [
            i for i, (a, b) in enumerate(zip(files[name], data[name], strict=True)) if a != b
        ]
        if changed:
            first_bad = min(first_bad, log.record_at(file_no, changed[0]))
    with damaged(files, {name: bytes(b) for name, b in data.items()}) as path:
        assert_recovers(path, log, first_bad, fresh)


# ---- splices: bytes inserted, removed or replaced -------------------------------------------


@SETTINGS
@given(
    log=logs(),
    file_pick=st.integers(0, 10),
    where=st.floats(0, 1),
    cut=st.integers(0, 40),
    junk=st.binary(max_size=40),
)
def test_splice_never_surfaces_a_modified_record(
    log: Log, file_pick: int, where: float, cut: int, junk: bytes
) -> None:
    """``cut`` bytes at a point replaced by ``junk`` (an insertion, a deletion, an
    overwrite, a lost or duplicated block): the records wholly before the point survive and
    nothing after it surfaces altered. (Content shifted by whole records can be replayed
    again only with the seq it was written under, so ``assert_recovers`` still holds.)"""
    with tempfile.TemporaryDirectory() as tmp:
        files = log.write(Path(tmp))
    lay = log.files()
    file_no = file_pick % len(lay)
    name = lay[file_no][0]
    old = files[name]
    at = int(where * len(old))
    new = old[:at] + junk + old[at + cut :]
    intact = sum(len(s) for _, s in lay[:file_no]) + sum(e <= at for _, e in lay[file_no][1])
    with damaged(files, {name: new}) as path:
        _, recs = replay(path)
        assert [r.seq for r in recs[:intact]] == list(range(1, intact + 1))
        assert_recovers(path, log, None, [log.specs[0]])


# ---- decode on arbitrary bodies -------------------------------------------------------------

#: What replay catches to end the log at an undecodable record (app/store/wal.py).
DECODE_ERRORS = (ValueError, struct.error, orjson.JSONDecodeError)


@st.composite
def plausible_bodies(draw: st.DrawFn) -> bytes:
    """Bodies laid out like real ones (a kind, counts, ids, consistent token offsets, vector
    bytes, a meta length) with counts and contents drawn from edge values: they get as far
    into ``decode`` as a body can, where random bytes stop at the first read."""
    kind = draw(st.sampled_from([UPSERT, DELETE, TOKENS_UPSERT, 0, 4, 255]))
    small_or_huge = st.integers(0, 4) | st.sampled_from([2**31, 2**32 - 1])
    n, dim = draw(small_or_huge), draw(small_or_huge)
    rows = draw(st.integers(0, 16) | st.sampled_from([2**32, 2**62, 2**63 - 1]))
    head = bytes([kind]) + struct.pack("<II", n, dim)
    if kind == TOKENS_UPSERT:
        head += struct.pack("<Q", rows)
    k = min(n, 4)
    ids = struct.pack(
        f"<{k}q", *draw(st.lists(st.integers(-(2**63), 2**63 - 1), min_size=k, max_size=k))
    )
    steps = np.cumsum(draw(st.lists(st.integers(1, 3), min_size=k, max_size=k)), dtype=np.int64)
    # Ending at the header's count: a small count makes them decrease (rejected), a huge one
    # makes the vector count overflow numpy's size type.
    offsets = struct.pack(f"<{k + 1}q", 0, *steps[: k - 1].tolist(), rows) if k else b""
    vectors = draw(st.binary(max_size=32))
    meta = draw(st.sampled_from([b"{}", b"[]", b"1", b"null", b'{"keys": []}', b"{", b""]))
    parts = [head, ids, offsets if kind == TOKENS_UPSERT else b"", vectors]
    parts += [struct.pack("<I", len(meta)), meta]
    return b"".join(parts) + draw(st.binary(max_size=4))


@settings(SETTINGS, max_examples=500)
@given(body=st.binary(min_size=1, max_size=120) | plausible_bodies())
def test_decode_raises_only_what_replay_catches(body: bytes) -> None:
    """Any body decodes or raises one of the errors replay turns into "the log ends here":
    anything else would make a collection with such a record impossible to open."""
    try:
        rec = decode(1, body)
    except DECODE_ERRORS:
        return
    assert rec.kind in (UPSERT, DELETE, TOKENS_UPSERT)
    assert isinstance(rec.meta, dict)
    n = len(rec.ids)
    if rec.kind == TOKENS_UPSERT:
        assert rec.offsets is not None and rec.vectors is not None
        assert len(rec.offsets) == n + 1 and rec.offsets[-1] == len(rec.vectors)
    elif rec.kind == UPSERT:
        assert rec.vectors is not None and len(rec.vectors) == n


@settings(SETTINGS, max_examples=200)
@given(log=logs(), at=st.integers(0, 10), body=plausible_bodies() | st.binary(min_size=1))
def test_checksummed_garbage_record_ends_the_log(log: Log, at: int, body: bytes) -> None:
    """A well-checksummed record that does not decode (a writer bug, another version) ends
    the log at that record; it never stops the log from opening."""
    at = at % (len(log.specs) + 1)
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "wal"
        wal = WriteAheadLog(path)
        for spec in log.specs[:at]:
            wal.append(spec.body())
        wal.append(body)
        for spec in log.specs[at:]:
            wal.append(spec.body())
        wal.close()
        _, recs = replay(path)
        # Either the body decoded (all records replay) or the log ends right before it.
        assert len(recs) in (at, len(log.specs) + 1)
        rest = log.specs[:at] + ([] if len(recs) == at else [None, *log.specs[at:]])
        for rec, spec in zip(recs, rest, strict=True):
            assert spec is None or spec.matches(rec)


# ---- a collection on a damaged log ----------------------------------------------------------

D = 4


def _open(path: Path) -> Collection:
    settings = Settings(data_dir=path.parent, seal_threshold=10_000)
    return Collection(path, CollectionConfig("c", D, "ip"), settings)  # type: ignore[arg-type]


def _flip(files: list[Path], flips: list[float]) -> None:
    blobs = [bytearray(f.read_bytes()) for f in files]
    total = sum(len(b) for b in blobs)
    for where in flips:
        bit, i = int(where * 8 * total), 0
        while bit >= 8 * len(blobs[i]):
            bit -= 8 * len(blobs[i])
            i += 1
        blobs[i][bit // 8] ^= 1 << (bit % 8)
    for f, blob in zip(files, blobs, strict=True):
        f.write_bytes(bytes(blob))


@settings(SETTINGS, max_examples=30)
@given(
    batches=st.lists(
        st.lists(st.integers(0, 12), min_size=1, max_size=4, unique=True), min_size=2, max_size=6
    ),
    flips=st.lists(st.floats(0, 1, exclude_max=True), min_size=1, max_size=3),
    seal_after=st.integers(0, 6),
)
def test_collection_opens_on_a_damaged_log(
    batches: list[list[int]], flips: list[float], seal_after: int
) -> None:
    """Bit flips in a cleanly closed collection's WAL, whose points store has applied every
    record: the collection opens; a point whose last write survived (in a segment or in the
    replayed WAL) keeps that write; a point whose last write was lost is gone, not left as a
    payload without a vector; and the collection takes new writes that survive a reopen."""
    rng = np.random.default_rng(len(batches))
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "c"
        path.mkdir()
        col = _open(path)
        last: dict[int, tuple[int, np.ndarray]] = {}  # id -> (seq of its last write, vector)
        for b, keys in enumerate(batches):
            x = rng.standard_normal((len(keys), D)).astype(np.float32)
            _, seq = col.upsert(keys, x.tolist(), [{"b": b} for _ in keys])
            last.update((k, (seq, v)) for k, v in zip(keys, x, strict=True))
            if b + 1 == seal_after:
                col.seal()  # these now live in a segment; their WAL file is dropped
        col.close()
        sealed = seal_after if seal_after <= len(batches) else 0
        wal_dir = path / "wal"
        _flip(sorted(wal_dir.glob("*.wal")), flips)
        with tempfile.TemporaryDirectory() as probe:  # what the damaged log still holds
            shutil.copytree(wal_dir, Path(probe) / "wal")
            intact = {r.seq for r in WriteAheadLog(Path(probe) / "wal").replay()}

        col = _open(path)
        expect = {k: v for k, (seq, v) in last.items() if seq <= sealed or seq in intact}
        assert {json.loads(k) for k, _, _ in col.points.scroll(None, 100, None)} == set(expect)
        assert col.points.count() == col.info()["count"] == len(expect)
        for key, vec in expect.items():
            iid, payload = col.require(key)
            assert payload == {"b": last[key][0] - 1}
            np.testing.assert_array_equal(col.vector_of(iid), vec)
        if expect:
            hits = search(col, [Query(vector=[1.0] * D, k=20)], max_k=100)[0].hits
            assert sorted(h.id for h in hits) == sorted(expect)
        col.upsert([99], [[1.0] * D], [None])
        col.close()
        col = _open(path)
        assert col.points.count() == len(expect | {99: None})
        np.testing.assert_array_equal(col.vector_of(col.require(99)[0]), [1.0] * D)
        col.close()
