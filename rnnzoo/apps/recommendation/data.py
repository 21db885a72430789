"""Recommendation data: interaction sequences, their readers, the item catalogue, the
leave-one-out split, training windows and the ranking metrics. TF-free.

Layouts (``load_sequences``; a folder holding one data file is read as that file):

* ``sequences``: ``user item`` lines (SASRec's format: whitespace-separated integer ids, each
  user's lines in time order), e.g. MovieLens-1M's ``ml-1m.train.txt``. When
  ``sas_to_original_items.txt`` lies beside the file (SASRec id -> MovieLens movie id), item ids
  are read as MovieLens movie ids, and ``movies.dat`` beside it gives their titles.
* ``sessions``: a CSV (``;``, ``,`` or tab separated) with a header naming a session column
  (``session_id``), an item column (``item_id``) and optionally a time column (``timeframe``,
  ``timestamp``) and a date column (``eventdate``), as the DIGINETICA/YooChoose click logs.
  Rows are sorted by (date, time) within a session; file order is not click order there.
* a user's own list: ``read_history("2858,1196,260")`` (ids separated by commas or spaces, or a
  file of them).

The split is leave-one-out: the last interaction of every sequence is its ``dev`` target (also
called ``last``), given the items before it; training reads every sequence without its last
item. Evaluation ranks the target against every item of the catalogue, the items the user has
already seen filtered out (full ranking); the legacy 100-sampled-negatives numbers are an extra,
labelled so.
"""

from __future__ import annotations

import csv
import dataclasses
import io
import json
import math
import os
import re
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any, Literal, NamedTuple

import numpy as np

from rnnzoo import limits
from rnnzoo.config import rule
from rnnzoo.errors import ConfigError, DataError, short_repr

ASSET_FILE = "items.json"
MAPPING_FILE = "sas_to_original_items.txt"
TITLES_FILE = "movies.dat"
SESSION_COLUMNS = {"session": ("session_id", "sessionid", "session"),
                   "item": ("item_id", "itemid", "item"),
                   "time": ("timeframe", "timestamp", "time", "ts"),
                   "date": ("eventdate", "date")}
#: Ranks at or past this are misses for every metric (targets outside the catalogue).
MISS = 1 << 30
# Published numbers on MovieLens-1M in SASRec's preprocessing (see SOURCE.md of the shared data),
# each on the held-out test item (the last interaction, which the shared file leaves out).
PUBLISHED = {
    "ml-1m": {
        "protocol": "full ranking over 3,416 items, seen items filtered, last item per user",
        "values": {"SASRec (BCE; gSASRec README)": {"hr@10": 0.2392, "ndcg@10": 0.1259},
                   "gSASRec (gBCE; gSASRec README)": {"hr@10": 0.3003, "ndcg@10": 0.1726},
                   "popularity (measured on the held-out items)": {"hr@10": 0.0363,
                                                                   "ndcg@10": 0.0178}},
    },
}


@dataclasses.dataclass
class DataConfig:
    # auto: sessions for a CSV whose header names a session column, else `user item` lines.
    layout: Literal["auto", "sequences", "sessions"] = "auto"
    # The most recent interactions the model reads: training windows hold max_length + 1 items
    # (a longer sequence is cut into several), and ranking reads the last max_length items of a
    # history (every seen item is still filtered out).
    max_length: int = rule(200, min=1)
    # auto: SASRec item ids are read as MovieLens movie ids when sas_to_original_items.txt lies
    # beside the data file (titles from movies.dat); file: the ids as written.
    item_ids: Literal["auto", "file"] = "auto"


class LeaveOneOut(NamedTuple):
    """The evaluation split: each user's history (item ids, time order) and the next item."""

    histories: list[np.ndarray]
    targets: np.ndarray
    users: list[str]


@dataclasses.dataclass
class SequenceData:
    """Interaction sequences (item ids in time order), one per user or session, in file order;
    ``titles`` maps item ids to titles where the data has them."""

    sequences: list[np.ndarray]
    users: list[str]
    description: str
    layout: str = "sequences"
    titles: dict[int, str] = dataclasses.field(default_factory=dict)
    benchmark: str | None = None

    kind = "recommendation data"

    @property
    def num_train(self) -> int:
        return sum(1 for s in self.sequences if len(s) >= 3)

    @property
    def num_dev(self) -> int:
        return sum(1 for s in self.sequences if len(s) >= 2)

    def split(self, name: str) -> Any:
        """``train``: every sequence without its last item (those with >= 2 items left);
        ``dev`` or ``last``: the leave-one-out split (:class:`LeaveOneOut`) of every sequence
        with at least 2 items. The held-out test items are not in the file."""
        if name == "train":
            return [s[:-1] for s in self.sequences if len(s) >= 3]
        if name in ("dev", "last"):
            keep = [i for i, s in enumerate(self.sequences) if len(s) >= 2]
            return LeaveOneOut([self.sequences[i][:-1] for i in keep],
                               np.array([self.sequences[i][-1] for i in keep], np.int64),
                               [self.users[i] for i in keep])
        raise ConfigError(f"split {name!r}: {self.kind} has the splits train, dev and last "
                          "(dev = last: each user's last interaction given the rest; the "
                          "test items are held out of these files)")

    def head(self, limit: int | None) -> SequenceData:
        """The first ``limit`` sequences (users in file order): a fixed, quick subset."""
        if limit is None or limit >= len(self.sequences):
            return self
        return dataclasses.replace(self, sequences=self.sequences[:limit],
                                   users=self.users[:limit],
                                   description=f"{self.description} (first {limit} users)")


# -- readers ------------------------------------------------------------------------------------


def _read_text(path: Path) -> str:
    try:
        data = path.read_bytes()
    except IsADirectoryError:
        raise DataError(f"{path}: a folder; give the data file") from None
    except OSError as exc:
        raise DataError(f"{path}: cannot read it ({exc.strerror})") from None
    if not data.strip():
        raise DataError(f"{path}: empty file (no interactions)")
    nul = data.find(b"\x00", 0, 65536)
    if nul >= 0:
        raise DataError(f"{path}: a binary file (NUL byte at offset {nul}); give `user item` "
                        "lines or a session CSV")
    try:
        return data.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        line = data[: exc.start].count(b"\n") + 1
        raise DataError(f"{path}: not UTF-8 text (byte {exc.start}, line {line})") from None


def _data_file(path: Path) -> Path:
    """``path``, or the one data file of a folder (``*.txt`` other than the id mapping, or
    ``*.csv``)."""
    if not path.exists():
        raise DataError(f"{path}: no such file or folder")
    if path.is_file():
        return path
    found = sorted(p for p in path.iterdir() if p.is_file() and p.name != MAPPING_FILE
                   and p.suffix in (".txt", ".csv") and not p.name.startswith("."))
    if len(found) != 1:
        names = ", ".join(p.name for p in found) or "none"
        raise DataError(f"{path}: expected one data file (`user item` lines .txt, or a session "
                        f".csv) in this folder, found {names}; give the file itself")
    return found[0]


def _bad_id(path: Path, lineno: int, token: str, what: str) -> DataError:
    return DataError(f"{path}, line {lineno}: {what} {short_repr(token)} is not an integer id; "
                     "item and user ids are integers (map other ids to integers first)")


def read_pairs(path: Path) -> tuple[np.ndarray, np.ndarray]:
    """``user item`` lines -> (users, items) int64 arrays in file order."""
    text = _read_text(path)
    lines = text.splitlines()
    tokens = text.split()
    rows = sum(1 for ln in lines if ln.strip())
    if len(tokens) == 2 * rows:
        try:
            pairs = np.array(tokens, dtype=np.int64).reshape(-1, 2)
        except (ValueError, OverflowError):
            pairs = None
        if pairs is not None:
            if (pairs < 0).any():
                bad = int(np.argwhere(pairs < 0)[0][0])
                raise DataError(f"{path}: interaction {bad + 1} has a negative id; ids are "
                                "integers >= 0")
            return pairs[:, 0], pairs[:, 1]
    for n, line in enumerate(lines, 1):  # find the line that breaks the format
        parts = line.split()
        if not parts:
            continue
        if len(parts) != 2:
            raise DataError(f"{path}, line {n}: expected `user item` (two integer ids), found "
                            f"{short_repr(line)}; a session log needs a CSV header naming "
                            "session_id and item_id")
        for token, what in zip(parts, ("user", "item")):
            if not re.fullmatch(r"\d+", token):
                raise _bad_id(path, n, token, what)
    raise DataError(f"{path}: ids out of range (integers below 2**63)")


def _column(header: list[str], names: Iterable[str]) -> int | None:
    low = [h.strip().lower() for h in header]
    for name in names:
        if name in low:
            return low.index(name)
    return None


def _time_value(text: str) -> float:
    try:
        return float(text)
    except ValueError:
        return math.nan


def read_sessions(path: Path) -> tuple[list[str], list[np.ndarray]]:
    """A session CSV -> (session ids, item sequences), each session's rows sorted by (date,
    time) and the sessions by their first (date, time), then file order."""
    text = _read_text(path)
    first = text.split("\n", 1)[0]
    delimiter = max((";", ",", "\t"), key=first.count)
    reader = csv.reader(io.StringIO(text), delimiter=delimiter)
    header = next(reader)
    col = {k: _column(header, v) for k, v in SESSION_COLUMNS.items()}
    if col["session"] is None or col["item"] is None:
        raise DataError(f"{path}: a session CSV needs a header naming the session and item "
                        f"columns (session_id and item_id), found {short_repr(first)}")
    sessions: dict[str, list[tuple[str, float, int, int]]] = {}
    width = max(c for c in col.values() if c is not None) + 1
    for n, row in enumerate(reader, 2):
        if not row or not any(cell.strip() for cell in row):
            continue
        if len(row) < width:
            raise DataError(f"{path}, line {n}: {len(row)} fields, the header has "
                            f"{len(header)}; is the separator {delimiter!r}?")
        token = row[col["item"]].strip()
        if not re.fullmatch(r"\d+", token):
            raise _bad_id(path, n, token, "item")
        date = row[col["date"]].strip() if col["date"] is not None else ""
        when = _time_value(row[col["time"]]) if col["time"] is not None else 0.0
        sessions.setdefault(row[col["session"]].strip(), []).append((date, when, n, int(token)))
    if not sessions:
        raise DataError(f"{path}: a header and no interactions")
    ordered = []
    for sid, rows in sessions.items():
        rows.sort(key=lambda r: (r[0], r[1] if r[1] == r[1] else 0.0, r[2]))
        ordered.append(((rows[0][0], rows[0][2]), sid, np.array([r[3] for r in rows], np.int64)))
    ordered.sort(key=lambda t: t[0])
    return [t[1] for t in ordered], [t[2] for t in ordered]


def _group(users: np.ndarray, items: np.ndarray) -> tuple[list[str], list[np.ndarray]]:
    """Items grouped per user (users in order of first appearance, items in file order)."""
    uniq, first, codes = np.unique(users, return_index=True, return_inverse=True)
    order = np.argsort(codes, kind="stable")
    bounds = np.cumsum(np.bincount(codes, minlength=len(uniq)))[:-1]
    groups = np.split(items[order], bounds)
    by_first = np.argsort(first, kind="stable")
    return [str(uniq[i]) for i in by_first], [groups[i] for i in by_first]


def read_id_mapping(path: Path) -> dict[int, int]:
    """``sas_to_original_items.txt``: ``file_id original_id`` lines."""
    users, items = read_pairs(path)
    if len(set(users.tolist())) != len(users) or len(set(items.tolist())) != len(items):
        raise DataError(f"{path}: an id mapped twice; expected one `file_id original_id` line "
                        "per item")
    return dict(zip(users.tolist(), items.tolist()))


def read_titles(path: Path) -> dict[int, str]:
    """MovieLens ``movies.dat`` (``MovieID::Title::Genres``, ISO-8859-1)."""
    titles = {}
    for n, line in enumerate(path.read_bytes().decode("latin-1").splitlines(), 1):
        if not line.strip():
            continue
        parts = line.split("::")
        if len(parts) < 2 or not parts[0].strip().isdigit():
            raise DataError(f"{path}, line {n}: expected MovieID::Title::Genres, found "
                            f"{short_repr(line)}")
        titles[int(parts[0])] = parts[1].strip()
    return titles


def load_sequences(path: str | os.PathLike, d: DataConfig | None = None) -> SequenceData:
    """Read interaction sequences (layout by ``d.layout``; see the module docstring)."""
    d = d or DataConfig()
    file = _data_file(Path(path))
    layout = d.layout
    if layout == "auto":
        head = file.read_bytes()[:4096].decode("utf-8", "replace").split("\n", 1)[0].lower()
        layout = "sessions" if "session" in head else "sequences"
    titles: dict[int, str] = {}
    benchmark = None
    if layout == "sessions":
        users, sequences = read_sessions(file)
        noun = "sessions"
    else:
        u, items = read_pairs(file)
        mapping_file = file.parent / MAPPING_FILE
        mapped = d.item_ids == "auto" and mapping_file.is_file()
        if mapped:
            mapping = read_id_mapping(mapping_file)
            missing = sorted(set(np.unique(items).tolist()) - set(mapping))
            if missing:
                raise DataError(f"{file}: item {missing[0]} is not in {mapping_file} (and "
                                f"{len(missing) - 1} more); give item_ids=file to read ids "
                                "as written")
            lookup = np.zeros(max(mapping) + 1, np.int64)
            lookup[list(mapping)] = list(mapping.values())
            items = lookup[items]
        if (file.parent / TITLES_FILE).is_file() and (mapped or not mapping_file.is_file()):
            titles = read_titles(file.parent / TITLES_FILE)
        users, sequences = _group(u, items)
        noun = "users"
        if file.name.startswith("ml-1m") and mapped:
            benchmark = "ml-1m"
    n = sum(len(s) for s in sequences)
    n_items = len(np.unique(np.concatenate(sequences)))
    desc = (f"{file.name}: {len(sequences):,} {noun}, {n_items:,} items, {n:,} interactions"
            + (" (item ids: MovieLens movie ids)" if benchmark else ""))
    return SequenceData(sequences, users, desc, layout, titles, benchmark)


def read_history(value: Any, where: str = "history") -> list[int]:
    """A user's own list of item ids, oldest first: a list of integers, a string of ids
    separated by commas or spaces (``"2858,1196,260"``), or the path of a file of them."""
    if isinstance(value, (str, os.PathLike)) and not isinstance(value, bytes):
        text = os.fspath(value)
        if isinstance(value, os.PathLike) or (text and not re.fullmatch(r"[\d,\s]*", text)
                                              and Path(text).is_file()):
            where, text = f"{where} ({text})", _read_text(Path(text))
        tokens = [t for t in re.split(r"[,\s]+", text.strip()) if t]
        bad = next((t for t in tokens if not re.fullmatch(r"\d+", t)), None)
        if bad is not None:
            raise DataError(f"{where}: {short_repr(bad)} is not an item id; give integer ids "
                            "separated by commas, e.g. 2858,1196,260")
        value = [int(t) for t in tokens]
    if isinstance(value, np.ndarray):
        value = value.tolist() if value.ndim == 1 else value
    if not isinstance(value, (list, tuple)) or any(
            isinstance(v, bool) or not isinstance(v, (int, np.integer)) or v < 0 for v in value):
        raise DataError(f"{where}: expected a list of item ids (integers >= 0), found "
                        f"{short_repr(value)}")
    limits.check("max_history_items", len(value), where)
    return [int(v) for v in value]


# -- the catalogue (the preprocessor) -----------------------------------------------------------


class ItemCatalog:
    """The items a model ranks: model index ``i + 1`` is item ``ids[i]`` (index 0 is padding
    and never recommended); ``counts`` are the training interactions per item (the popularity
    ranker and the cold-start answer); ``titles`` where the data has them."""

    def __init__(self, ids: Sequence[int] = (), counts: Sequence[int] = (),
                 titles: dict[int, str] | None = None) -> None:
        self.ids = np.asarray(ids, np.int64)
        self.counts = np.asarray(counts, np.int64)
        self.titles = dict(titles or {})
        self.index = {int(v): i + 1 for i, v in enumerate(self.ids.tolist())}

    @property
    def is_fitted(self) -> bool:
        return len(self.ids) > 0

    @property
    def size(self) -> int:
        """Model indices in use: the items and the padding index 0."""
        return len(self.ids) + 1

    @classmethod
    def fit(cls, sequences: Sequence[np.ndarray], max_items: int,
            titles: dict[int, str] | None = None) -> ItemCatalog:
        """The ``max_items`` most frequent items of ``sequences`` (ties by id), in id order."""
        if not sequences:
            raise DataError("no training interactions to build the item catalogue from")
        ids, counts = np.unique(np.concatenate(sequences), return_counts=True)
        if len(ids) > max_items:
            keep = np.lexsort((ids, -counts))[:max_items]
            keep.sort()
            ids, counts = ids[keep], counts[keep]
        known = {int(i): titles[int(i)] for i in ids.tolist() if titles and int(i) in titles}
        return cls(ids, counts, known)

    def encode(self, items: Iterable[int]) -> np.ndarray:
        """Model indices (0 for items outside the catalogue) of item ids."""
        get = self.index.get
        return np.fromiter((get(int(i), 0) for i in items), np.int32)

    def known(self, items: Iterable[int]) -> np.ndarray:
        """Model indices of the items in the catalogue, in order (the others dropped)."""
        idx = self.encode(items)
        return idx[idx > 0]

    def item(self, index: int) -> int:
        return int(self.ids[index - 1])

    def title(self, item: int) -> str | None:
        return self.titles.get(int(item))

    def popularity(self) -> np.ndarray:
        """float64 ``[size]``: training interactions per index (0 for padding)."""
        return np.concatenate([[0.0], self.counts.astype(np.float64)])

    def to_json(self) -> str:
        return json.dumps({"ids": self.ids.tolist(), "counts": self.counts.tolist(),
                           "titles": {str(k): v for k, v in sorted(self.titles.items())}},
                          ensure_ascii=False)

    @classmethod
    def from_dict(cls, raw: Any, where: str, error: type[Exception] = DataError,
                  fitted: bool = True) -> ItemCatalog:
        """Read :meth:`to_json`; ``fitted=False`` also accepts the empty catalogue of a model
        saved before training."""
        ok = isinstance(raw, dict) and isinstance(raw.get("ids"), list) \
            and isinstance(raw.get("counts"), list) and isinstance(raw.get("titles", {}), dict)
        if ok:
            ids, counts = raw["ids"], raw["counts"]
            ok = len(ids) == len(counts) and all(
                isinstance(v, int) and not isinstance(v, bool) and v >= 0
                for v in [*ids, *counts]) and len(set(ids)) == len(ids)
            ok = ok and all(isinstance(k, str) and k.isdigit() and isinstance(v, str)
                            for k, v in raw.get("titles", {}).items())
        if not ok or (fitted and not raw["ids"]):
            raise error(f"{where}: expected {{\"ids\": [item ids], \"counts\": [training "
                        f"counts], \"titles\": {{id: title}}}}, found {short_repr(raw)}")
        return cls(raw["ids"], raw["counts"],
                   {int(k): v for k, v in raw.get("titles", {}).items()})


# -- training windows ---------------------------------------------------------------------------


def windows(sequences: Sequence[np.ndarray], max_length: int) -> list[np.ndarray]:
    """Each sequence (model indices) cut from its end into pieces of at most ``max_length + 1``
    items overlapping by one (input t predicts item t + 1 within a piece); pieces of one item
    have nothing to predict and are dropped."""
    out = []
    for s in sequences:
        end = len(s)
        while end >= 2:
            out.append(s[max(0, end - max_length - 1):end])
            end -= max_length
    return out


def padded_batches(pieces: Sequence[np.ndarray], batch_size: int, rng: np.random.Generator
                   ) -> list[tuple[np.ndarray, np.ndarray]]:
    """``(inputs, targets)`` int32 batches, post-padded with 0 (target 0 is ignored by the
    loss): pieces sorted by length (ties shuffled) and cut into batches of ``batch_size``, so a
    batch holds pieces of similar length; the batch order is shuffled."""
    lengths = np.array([len(p) for p in pieces])
    order = np.lexsort((rng.permutation(len(pieces)), lengths))
    batches = []
    for start in range(0, len(order), batch_size):
        rows = [pieces[i] for i in order[start:start + batch_size]]
        width = max(len(r) for r in rows) - 1
        x = np.zeros((len(rows), width), np.int32)
        y = np.zeros((len(rows), width), np.int32)
        for j, r in enumerate(rows):
            x[j, :len(r) - 1] = r[:-1]
            y[j, :len(r) - 1] = r[1:]
        batches.append((x, y))
    return [batches[i] for i in rng.permutation(len(batches))]


# -- metrics ------------------------------------------------------------------------------------


def rank_of(scores: np.ndarray, target: int) -> int:
    """0-based rank of ``target`` among ``scores`` (items scoring strictly higher); a target
    scored ``-inf`` (filtered, or outside the catalogue) is a miss."""
    value = scores[target]
    if not np.isfinite(value):
        return MISS
    return int(np.count_nonzero(scores > value))


def ranking_metrics(ranks: Sequence[int] | np.ndarray) -> dict[str, float]:
    """HR@10 (= Recall@10 with one target), NDCG@10, MRR@20 and Recall@20 of 0-based ranks of
    one held-out item each: NDCG@10 is ``1 / log2(rank + 2)`` inside the top 10, MRR@20
    ``1 / (rank + 1)`` inside the top 20."""
    r = np.asarray(ranks, np.float64)
    if not len(r):
        raise DataError("no held-out item to rank")
    return {"hr@10": float(np.mean(r < 10)),
            "ndcg@10": float(np.mean(np.where(r < 10, 1.0 / np.log2(np.minimum(r, 1e9) + 2),
                                              0.0))),
            "mrr@20": float(np.mean(np.where(r < 20, 1.0 / (np.minimum(r, 1e9) + 1), 0.0))),
            "recall@20": float(np.mean(r < 20))}


def sampled_rank(scores: np.ndarray, target: int, seen: np.ndarray, size: int,
                 rng: np.random.Generator, negatives: int = 100) -> int:
    """The legacy protocol (SASRec 2018): the rank of ``target`` among ``negatives`` items drawn
    uniformly from the catalogue indices ``1..size-1`` the user has not interacted with."""
    if not np.isfinite(scores[target]):
        return MISS
    allowed = np.ones(size, bool)
    allowed[0] = False
    allowed[seen] = False
    allowed[target] = False
    pool = np.flatnonzero(allowed)
    picked = rng.choice(pool, size=min(negatives, len(pool)), replace=False)
    return int(np.count_nonzero(scores[picked] > scores[target]))
