"""Write-ahead log: round trips, sequence numbers, rolling and dropping files, and recovery from
torn tails, bit flips and trailing garbage (replay yields a prefix, never a modified record)."""

from __future__ import annotations

import os
import shutil
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st
from support import fuzz_settings

from app.store.wal import (
    DELETE,
    HEADER,
    MAGIC,
    UPSERT,
    Record,
    WriteAheadLog,
    encode_delete,
    encode_upsert,
)

SETTINGS = fuzz_settings(200, large_data=False)


@dataclass(frozen=True)
class Spec:
    """What one record should decode to."""

    kind: int
    ids: np.ndarray
    vectors: np.ndarray | None
    meta: dict[str, Any]

    def body(self) -> bytes:
        if self.kind == UPSERT:
            assert self.vectors is not None
            return encode_upsert(self.ids, self.vectors, self.meta)
        return encode_delete(self.ids, self.meta)


def make_specs(seed: int, count: int, max_n: int = 4) -> list[Spec]:
    """Mixed upserts and deletes; vectors are arbitrary float32 bit patterns (NaNs with
    payloads, infinities, -0.0, subnormals) so that bit-exactness is really tested."""
    rng = np.random.default_rng(seed)
    specs = []
    for r in range(count):
        n = int(rng.integers(0, max_n + 1))
        ids = rng.integers(-(2**63), 2**63 - 1, size=n, dtype=np.int64, endpoint=True)
        keys: list[Any] = [int(i) if j % 2 else f"k{r}-{j}" for j, i in enumerate(ids)]
        if rng.uniform() < 0.65:
            dim = int(rng.integers(1, 5))
            bits = rng.integers(0, 2**32, size=(n, dim), dtype=np.uint32)
            bits.flat[:3] = [0x7FC12345, 0x80000000, 0x00000001][: bits.size]
            meta = {"keys": keys, "payloads": [{"r": r, "s": 'é\n"', "f": 0.1} for _ in keys]}
            specs.append(Spec(UPSERT, ids, bits.view(np.float32), meta))
        else:
            specs.append(Spec(DELETE, ids, None, {"keys": keys}))
    return specs


def assert_record(rec: Record, spec: Spec, seq: int) -> None:
    assert rec.seq == seq
    assert rec.kind == spec.kind
    assert rec.ids.dtype == np.int64
    np.testing.assert_array_equal(rec.ids, spec.ids)
    if spec.vectors is None:
        assert rec.vectors is None
    else:
        assert rec.vectors is not None
        assert rec.vectors.dtype == np.float32
        assert rec.vectors.shape == spec.vectors.shape
        np.testing.assert_array_equal(rec.vectors.view(np.uint32), spec.vectors.view(np.uint32))
    assert rec.meta == spec.meta


def assert_prefix(recs: list[Record], specs: list[Spec], n: int | None = None) -> None:
    """``recs`` are the first ``len(recs)`` specs (exactly ``n`` of them when given), seq 1..."""
    if n is not None:
        assert len(recs) == n
    assert len(recs) <= len(specs)
    for k, rec in enumerate(recs):
        assert_record(rec, specs[k], k + 1)


def write_log(path: Path, specs: list[Spec], roll_after: tuple[int, ...] = ()) -> None:
    """Append ``specs`` (seq 1..n), rolling to a new file after the given seqs."""
    wal = WriteAheadLog(path)
    for k, spec in enumerate(specs, start=1):
        assert wal.append(spec.body()) == k
        if k in roll_after:
            assert wal.roll() == k
    wal.close()


def replay(path: Path) -> tuple[WriteAheadLog, list[Record]]:
    wal = WriteAheadLog(path)
    return wal, list(wal.replay())


def wal_name(seq: int) -> str:
    return f"{seq:020d}.wal"


def record_size(spec: Spec) -> int:
    return HEADER.size + len(spec.body())


def snapshot(path: Path) -> dict[str, bytes]:
    return {p.name: p.read_bytes() for p in sorted(path.iterdir())}


# ---- round trips and sequence numbers --------------------------------------------------------


def test_round_trip(tmp_path: Path) -> None:
    specs = make_specs(1, 40)
    write_log(tmp_path, specs)
    assert [p.name for p in WriteAheadLog(tmp_path).files()] == [wal_name(1)]
    wal, recs = replay(tmp_path)
    assert_prefix(recs, specs, len(specs))
    assert wal.last_seq == len(specs)
    # replay repairs nothing on a healthy log and can be repeated
    before = snapshot(tmp_path)
    _, again = replay(tmp_path)
    assert_prefix(again, specs, len(specs))
    assert snapshot(tmp_path) == before


def test_replay_sees_records_of_the_open_writer(tmp_path: Path) -> None:
    specs = make_specs(2, 3)
    wal = WriteAheadLog(tmp_path)
    for s in specs:
        wal.append(s.body())
    _, recs = replay(tmp_path)  # appends are flushed and fsynced before they return
    assert_prefix(recs, specs, 3)
    wal.close()


def test_empty_records_and_wide_vectors(tmp_path: Path) -> None:
    wide = np.arange(3 * 1000, dtype=np.float32).reshape(3, 1000)
    specs = [
        Spec(UPSERT, np.zeros(0, np.int64), np.zeros((0, 7), np.float32), {"keys": []}),
        Spec(DELETE, np.zeros(0, np.int64), None, {}),
        Spec(UPSERT, np.array([7, -7, 2**62], np.int64), wide, {"keys": [7, "-7", None]}),
    ]
    write_log(tmp_path, specs)
    _, recs = replay(tmp_path)
    assert_prefix(recs, specs, 3)
    assert recs[0].vectors is not None and recs[0].vectors.shape == (0, 7)


def test_encode_accepts_other_dtypes_bit_exactly(tmp_path: Path) -> None:
    ids32 = np.array([1, -2, 3], dtype=np.int32)
    big = np.array([[1.5, -0.0], [np.inf, 3e38]], dtype=">f4")[[0, 1, 1]]  # big-endian input
    wal = WriteAheadLog(tmp_path)
    wal.append(encode_upsert(ids32, big, {"k": 1}))
    wal.close()
    (rec,) = replay(tmp_path)[1]
    np.testing.assert_array_equal(rec.ids, [1, -2, 3])
    assert rec.vectors is not None
    np.testing.assert_array_equal(
        rec.vectors.view(np.uint32), big.astype(np.float32).view(np.uint32)
    )


def test_seq_is_monotonic_across_reopen(tmp_path: Path) -> None:
    specs = make_specs(3, 9)
    wal = WriteAheadLog(tmp_path)
    assert [wal.append(s.body()) for s in specs[:3]] == [1, 2, 3]
    wal.close()

    wal, recs = replay(tmp_path)
    assert wal.last_seq == 3
    assert [wal.append(s.body()) for s in specs[3:5]] == [4, 5]
    assert wal.roll() == 5
    assert wal.append(specs[5].body()) == 6
    wal.close()

    wal, recs = replay(tmp_path)
    assert wal.last_seq == 6
    assert [wal.append(s.body()) for s in specs[6:]] == [7, 8, 9]
    wal.close()

    # every reopen starts a new file named after its first seq
    names = [p.name for p in WriteAheadLog(tmp_path).files()]
    assert names == [wal_name(1), wal_name(4), wal_name(6), wal_name(7)]
    wal, recs = replay(tmp_path)
    assert_prefix(recs, specs, 9)
    assert [r.seq for r in recs] == list(range(1, 10))


def test_roll_without_appends_creates_no_file(tmp_path: Path) -> None:
    wal = WriteAheadLog(tmp_path)
    assert wal.roll() == 0
    assert wal.files() == []
    wal.append(make_specs(4, 1)[0].body())
    assert wal.roll() == 1
    assert wal.roll() == 1
    assert [p.name for p in wal.files()] == [wal_name(1)]
    wal.close()


# ---- roll + drop_through --------------------------------------------------------------------


def test_drop_through_deletes_only_fully_covered_files(tmp_path: Path) -> None:
    specs = make_specs(5, 9)
    write_log(tmp_path, specs, roll_after=(3, 6))  # files: 1..3, 4..6, 7..9
    wal = WriteAheadLog(tmp_path)
    assert [p.name for p in wal.files()] == [wal_name(1), wal_name(4), wal_name(7)]

    for seq in (0, 1, 2):
        assert wal.drop_through(seq) == 0
    assert len(wal.files()) == 3
    assert wal.drop_through(3) == 1
    assert [p.name for p in wal.files()] == [wal_name(4), wal_name(7)]
    assert wal.drop_through(5) == 0
    assert wal.drop_through(3) == 0
    # the newest file is never dropped, even when all its records are covered
    assert wal.drop_through(100) == 1
    assert [p.name for p in wal.files()] == [wal_name(7)]
    assert wal.drop_through(100) == 0

    wal, recs = replay(tmp_path)
    assert [r.seq for r in recs] == [7, 8, 9]
    for rec, spec in zip(recs, specs[6:], strict=True):
        assert_record(rec, spec, rec.seq)
    assert wal.last_seq == 9
    assert wal.append(specs[0].body()) == 10
    wal.close()


def test_drop_through_while_writing(tmp_path: Path) -> None:
    """The collection's pattern: roll at a boundary, keep appending, drop what is covered."""
    specs = make_specs(6, 8)
    wal = WriteAheadLog(tmp_path)
    for s in specs[:4]:
        wal.append(s.body())
    boundary = wal.roll()
    for s in specs[4:6]:
        wal.append(s.body())
    assert wal.drop_through(boundary) == 1
    for s in specs[6:]:
        wal.append(s.body())
    wal.close()
    _, recs = replay(tmp_path)
    assert [r.seq for r in recs] == [5, 6, 7, 8]
    assert [p.name for p in WriteAheadLog(tmp_path).files()] == [wal_name(5)]


def test_drop_through_ignores_quarantined_files(tmp_path: Path) -> None:
    specs = make_specs(7, 6)
    write_log(tmp_path, specs, roll_after=(2, 4))
    (tmp_path / "00000000000000000099.wal.corrupt").write_bytes(b"x")
    wal = WriteAheadLog(tmp_path)
    assert wal.drop_through(10) == 2
    assert (tmp_path / "00000000000000000099.wal.corrupt").exists()


# ---- torn tails -----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("count", "roll_after"),
    [(4, ()), (4, (3,)), (5, (2,)), (1, ())],
    ids=["mid-file", "first-in-file", "two-files", "only-record"],
)
def test_torn_tail_at_every_offset(tmp_path: Path, count: int, roll_after: tuple[int, ...]) -> None:
    specs = make_specs(8 + count, count, max_n=2)
    pristine = tmp_path / "pristine"
    write_log(pristine, specs, roll_after)
    last_file = WriteAheadLog(pristine).files()[-1]
    data = last_file.read_bytes()
    last_size = record_size(specs[-1])
    start = len(data) - last_size
    extra = make_specs(99, 1)[0]
    other = snapshot(pristine)
    del other[last_file.name]

    work = tmp_path / "work"
    for cut in range(start, len(data)):
        shutil.rmtree(work, ignore_errors=True)
        shutil.copytree(pristine, work)
        (work / last_file.name).write_bytes(data[:cut])

        wal, recs = replay(work)
        assert_prefix(recs, specs, count - 1)
        assert wal.last_seq == count - 1
        assert (work / last_file.name).stat().st_size == start
        assert {k: v for k, v in snapshot(work).items() if k != last_file.name} == other

        assert wal.append(extra.body()) == count  # the torn record's seq is reused
        wal.close()
        wal, recs = replay(work)
        assert_prefix(recs[:-1], specs, count - 1)
        assert_record(recs[-1], extra, count)
        assert not list(work.glob("*.corrupt"))


def test_torn_middle_file_quarantines_later_files(tmp_path: Path) -> None:
    specs = make_specs(9, 9)
    write_log(tmp_path, specs, roll_after=(3, 6))
    mid = tmp_path / wal_name(4)
    data = mid.read_bytes()
    mid.write_bytes(data[:-5])
    later = (tmp_path / wal_name(7)).read_bytes()

    wal, recs = replay(tmp_path)
    assert_prefix(recs, specs, 5)
    assert mid.stat().st_size == len(data) - record_size(specs[5])
    assert not (tmp_path / wal_name(7)).exists()
    assert (tmp_path / (wal_name(7) + ".corrupt")).read_bytes() == later
    assert wal.append(specs[0].body()) == 6
    wal.close()
    _, recs = replay(tmp_path)
    assert [r.seq for r in recs] == [1, 2, 3, 4, 5, 6]


# ---- corruption -----------------------------------------------------------------------------

CORRUPT_SPECS = make_specs(10, 10, max_n=3)
CORRUPT_ROLLS = (4, 7)  # files: 1..4, 5..7, 8..10


@pytest.fixture(scope="module")
def pristine(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("wal-pristine")
    write_log(path, CORRUPT_SPECS, CORRUPT_ROLLS)
    return path


def layout(path: Path) -> list[tuple[str, list[tuple[int, int]]]]:
    """[(file name, [(start, end) of each record])] computed from the specs, not the scanner."""
    out = []
    seq = 1
    bounds = [*CORRUPT_ROLLS, len(CORRUPT_SPECS)]
    for last in bounds:
        spans = []
        pos = 0
        first = seq
        while seq <= last:
            size = record_size(CORRUPT_SPECS[seq - 1])
            spans.append((pos, pos + size))
            pos += size
            seq += 1
        out.append((wal_name(first), spans))
    assert [p.name for p in sorted(path.glob("*.wal"))] == [n for n, _ in out]
    return out


def check_corrupted(work: Path, files: dict[str, bytes], lay: Any, first_bad: int) -> None:
    """After damage whose first changed byte is in record ``first_bad`` (0-based, global),
    replay yields exactly the records before it and repairs the log as documented."""
    wal, recs = replay(work)
    assert_prefix(recs, CORRUPT_SPECS, first_bad)
    assert wal.last_seq == first_bad

    idx = 0
    for name, spans in lay:
        if idx + len(spans) <= first_bad:  # wholly before the damage: untouched
            assert (work / name).read_bytes() == files[name]
        elif idx <= first_bad:  # the damaged file: cut at the bad record
            start = spans[first_bad - idx][0]
            assert (work / name).read_bytes() == files[name][:start]
        else:  # after the damage: quarantined, byte for byte
            assert not (work / name).exists()
            assert (work / (name + ".corrupt")).read_bytes() == files[name]
        idx += len(spans)

    # the repair is stable, and the log is writable again
    before = snapshot(work)
    wal, again = replay(work)
    assert_prefix(again, CORRUPT_SPECS, first_bad)
    assert snapshot(work) == before
    assert wal.append(CORRUPT_SPECS[0].body()) == first_bad + 1
    wal.close()
    _, final = replay(work)
    assert [r.seq for r in final] == list(range(1, first_bad + 2))


def global_index(lay: Any, file_no: int, byte: int) -> int:
    before = sum(len(spans) for _, spans in lay[:file_no])
    spans = lay[file_no][1]
    return before + next(k for k, (s, e) in enumerate(spans) if s <= byte < e)


@SETTINGS
@given(where=st.integers(0, 2**40))
def test_single_bit_flip_yields_the_records_before_it(pristine: Path, where: int) -> None:
    lay = layout(pristine)
    files = snapshot(pristine)
    sizes = [len(files[name]) for name, _ in lay]
    bit = where % (8 * sum(sizes))
    file_no = 0
    while bit >= 8 * sizes[file_no]:
        bit -= 8 * sizes[file_no]
        file_no += 1
    byte = bit // 8

    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp) / "wal"
        shutil.copytree(pristine, work)
        name = lay[file_no][0]
        data = bytearray(files[name])
        data[byte] ^= 1 << (bit % 8)
        (work / name).write_bytes(bytes(data))
        check_corrupted(work, files, lay, global_index(lay, file_no, byte))


@SETTINGS
@given(
    file_no=st.integers(0, 2),
    frac=st.floats(0, 1, exclude_max=True),
    junk=st.binary(min_size=1, max_size=4),
)
def test_short_overwrite_yields_a_prefix(
    pristine: Path, file_no: int, frac: float, junk: bytes
) -> None:
    """Any burst of up to 32 bits is caught by the CRC; replay never raises."""
    lay = layout(pristine)
    files = snapshot(pristine)
    name = lay[file_no][0]
    data = bytearray(files[name])
    at = int(frac * len(data))
    junk = junk[: len(data) - at]
    old = bytes(data[at : at + len(junk)])
    data[at : at + len(junk)] = junk

    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp) / "wal"
        shutil.copytree(pristine, work)
        (work / name).write_bytes(bytes(data))
        if old == junk:
            _, recs = replay(work)
            assert_prefix(recs, CORRUPT_SPECS, len(CORRUPT_SPECS))
            return
        first = at + next(k for k in range(len(junk)) if junk[k] != old[k])
        check_corrupted(work, files, lay, global_index(lay, file_no, first))


@SETTINGS
@given(
    file_no=st.integers(0, 2),
    frac=st.floats(0, 1, exclude_max=True),
    junk=st.binary(min_size=5, max_size=64),
)
def test_long_overwrite_never_yields_a_modified_record(
    pristine: Path, file_no: int, frac: float, junk: bytes
) -> None:
    lay = layout(pristine)
    files = snapshot(pristine)
    name = lay[file_no][0]
    data = bytearray(files[name])
    at = int(frac * len(data))
    data[at : at + len(junk)] = junk  # may also grow the file
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp) / "wal"
        shutil.copytree(pristine, work)
        (work / name).write_bytes(bytes(data))
        _, recs = replay(work)
        assert_prefix(recs, CORRUPT_SPECS)
        # every record wholly before the damaged spot survives
        assert len(recs) >= global_index(lay, file_no, at)
        _, again = replay(work)
        assert len(again) == len(recs)


def test_undecodable_record_with_valid_checksum_ends_the_log(tmp_path: Path) -> None:
    specs = make_specs(11, 6)
    wal = WriteAheadLog(tmp_path)
    for s in specs[:2]:
        wal.append(s.body())
    wal.append(b"\x07not a record")  # unknown kind, checksum fine
    for s in specs[2:4]:
        wal.append(s.body())
    wal.roll()
    for s in specs[4:]:
        wal.append(s.body())
    wal.close()
    wal, recs = replay(tmp_path)
    assert_prefix(recs, specs, 2)
    assert (tmp_path / wal_name(1)).stat().st_size == sum(record_size(s) for s in specs[:2])
    assert (tmp_path / (wal_name(6) + ".corrupt")).exists()
    assert wal.append(specs[0].body()) == 3
    wal.close()


# ---- trailing garbage ------------------------------------------------------------------------

_rng = np.random.default_rng(12)
GARBAGE = {
    "one-zero": b"\x00",
    "zeros-19": bytes(19),
    "zeros-20": bytes(20),
    "zeros-4096": bytes(4096),
    "random-7": _rng.bytes(7),
    "random-300": _rng.bytes(300),
    "header-bad-crc": HEADER.pack(MAGIC, 3, 0, 4) + b"\x02\x00\x00",
    "header-huge-len": HEADER.pack(MAGIC, 2**31, 0, 4) + bytes(40),
    "header-zero-len": HEADER.pack(MAGIC, 0, 0, 4) + bytes(40),
    "ff": b"\xff" * 64,
}


@pytest.mark.parametrize("garbage", list(GARBAGE.values()), ids=list(GARBAGE))
@pytest.mark.parametrize("where", ["last-file", "middle-file"])
def test_trailing_garbage_is_cut(tmp_path: Path, garbage: bytes, where: str) -> None:
    specs = make_specs(13, 6)
    write_log(tmp_path, specs, roll_after=(3,))
    name = wal_name(4) if where == "last-file" else wal_name(1)
    clean = (tmp_path / name).read_bytes()
    with open(tmp_path / name, "ab") as fh:
        fh.write(garbage)
    wal, recs = replay(tmp_path)
    if where == "last-file":
        assert_prefix(recs, specs, 6)
    else:  # anything after a bad spot is quarantined, never replayed
        assert_prefix(recs, specs, 3)
        assert (tmp_path / (wal_name(4) + ".corrupt")).exists()
    assert (tmp_path / name).read_bytes() == clean
    assert wal.append(specs[0].body()) == len(recs) + 1
    wal.close()


def test_stale_record_after_the_tail_is_not_replayed(tmp_path: Path) -> None:
    """Well-formed bytes of an *earlier* record after the tail (e.g. stale blocks a crash
    exposed, or a file restored by hand) pass the checksum: replay must still not yield them,
    since seqs in a log only grow. The collection would re-add the old vectors to its tail."""
    specs = make_specs(14, 4)
    write_log(tmp_path, specs)
    f = tmp_path / wal_name(1)
    data = f.read_bytes()
    first = data[: record_size(specs[0])]
    f.write_bytes(data + first)
    wal, recs = replay(tmp_path)
    assert [r.seq for r in recs] == [1, 2, 3, 4]
    assert f.read_bytes() == data
    wal.close()


def test_replay_on_missing_or_empty_directory(tmp_path: Path) -> None:
    wal, recs = replay(tmp_path / "new")
    assert recs == [] and wal.last_seq == 0
    assert (tmp_path / "new").is_dir()
    (tmp_path / "new" / wal_name(1)).write_bytes(b"")
    wal, recs = replay(tmp_path / "new")
    assert recs == []
    assert wal.append(make_specs(15, 1)[0].body()) == 1
    wal.close()
    _, recs = replay(tmp_path / "new")
    assert [r.seq for r in recs] == [1]
    assert os.path.getsize(tmp_path / "new" / wal_name(1)) > 0


def test_token_upsert_round_trip_and_torn_tail(tmp_path: Path) -> None:
    from app.store.wal import TOKENS_UPSERT, decode, encode_tokens_upsert

    rng = np.random.default_rng(4)
    tokens = rng.standard_normal((9, 5)).astype(np.float32)
    offsets = np.array([0, 2, 3, 9], dtype=np.int64)
    ids = np.array([4, 5, 6], dtype=np.int64)
    meta = {"keys": ["1", "2", "3"], "payloads": [None, {"a": 1}, None]}
    wal = WriteAheadLog(tmp_path)
    wal.append(encode_tokens_upsert(ids, tokens, offsets, meta))
    wal.append(encode_tokens_upsert(ids[:1] + 10, tokens[:1], np.array([0, 1]), meta))
    wal.close()
    recs = list(WriteAheadLog(tmp_path).replay())
    assert [r.kind for r in recs] == [TOKENS_UPSERT, TOKENS_UPSERT]
    first = recs[0]
    assert first.offsets is not None and first.vectors is not None
    np.testing.assert_array_equal(first.offsets, offsets)
    np.testing.assert_array_equal(first.vectors, tokens)  # bit-exact float32
    np.testing.assert_array_equal(first.ids, ids)
    assert first.meta == meta
    with pytest.raises(ValueError):
        encode_tokens_upsert(ids, tokens, offsets[:3], meta)
    bad = bytearray(encode_tokens_upsert(ids, tokens, offsets, meta))
    bad[1 + 4 + 4 + 8 + 8 * 3 + 8] = 9  # offsets[1] > offsets[2]: malformed, not replayed
    with pytest.raises(ValueError):
        decode(1, bytes(bad))
    f = sorted(tmp_path.glob("*.wal"))[0]
    f.write_bytes(f.read_bytes()[:-7])  # torn second record
    assert [r.seq for r in WriteAheadLog(tmp_path).replay()] == [1]
