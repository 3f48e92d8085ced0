"""Copies: exact (the same sha256) and near (pHash within a few bits and thumbnails that correlate,
or neighbours in the embedding at least `cosine` similar). Of each group of copies the one in the
earliest split (train, valid, test; then by id) is kept; a copy in the same split is a
``duplicate`` / ``near_duplicate``, one in a later split a ``leak`` / ``near_leak``. Files with the
same content but different labels cannot both be right, and which is cannot be told: every one of
them is a ``label_conflict``, its twin another of them.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from specimen.clean.neighbours import WORKING_BYTES, nearest

SPLIT_ORDER = {"train": 0, "valid": 1, "test": 2}
DUPLICATE_REASONS = ("duplicate", "leak", "near_duplicate", "near_leak", "label_conflict")  # shown with their twin
NEAR_NEIGHBOURS = 10  # embedding near copies are looked for among each image's 10 nearest


def _keeper_order(index: pd.DataFrame) -> np.ndarray:
    """Rank of each row as the copy to keep: earliest split, then id."""
    order = index.assign(_rank=index.split.map(SPLIT_ORDER)).sort_values(["_rank", "id"]).index
    rank = pd.Series(np.arange(len(order)), index=order)
    return rank.reindex(index.index).to_numpy()


def _copies(index: pd.DataFrame, groups: np.ndarray, kind: str, score, detail) -> pd.DataFrame:
    """Rows for every member of a group (same label in `groups`, -1 = none) but its keeper."""
    frame = index[["id", "split"]].assign(_g=groups, _rank=_keeper_order(index), score=score, detail=detail)
    frame = frame[frame._g >= 0].sort_values("_rank")
    keeper = frame.groupby("_g").id.transform("first")
    keeper_split = frame.groupby("_g").split.transform("first")
    copies = frame[frame.id != keeper]
    leak = copies.split != keeper_split[copies.index]
    names = {"exact": ("duplicate", "leak"), "near": ("near_duplicate", "near_leak")}[kind]
    return pd.DataFrame(
        {
            "id": copies.id,
            "reason": np.where(leak, names[1], names[0]),
            "score": copies.score,
            "twin": keeper[copies.index],
            "detail": copies.detail,
        }
    )


def exact_duplicates(index: pd.DataFrame) -> pd.DataFrame:
    groups = index.groupby("sha256", sort=False).ngroup().to_numpy()
    sizes = np.bincount(groups)
    groups = np.where(sizes[groups] > 1, groups, -1)
    conflict = (index.groupby(groups).label.transform("nunique") > 1).to_numpy() & (groups >= 0)
    copies = _copies(index, np.where(conflict, -1, groups), "exact", 1.0, "same sha256")
    return pd.concat([copies, label_conflicts(index[conflict], groups[conflict])], ignore_index=True)


def label_conflicts(rows: pd.DataFrame, groups: np.ndarray) -> pd.DataFrame:
    """Every file of a group with one content and several labels, its twin the next of them (by
    keeper order, the last's the first), the labels in the detail."""
    if rows.empty:
        return pd.DataFrame(columns=["id", "reason", "score", "twin", "detail"])
    frame = rows.assign(_g=groups, _rank=_keeper_order(rows)).sort_values(["_g", "_rank"])
    twin = frame.groupby("_g").id.transform(lambda ids: np.roll(ids.to_numpy(), -1))
    labels = frame.groupby("_g").label.transform(lambda ls: ", ".join(sorted(set(ls))))
    return pd.DataFrame(
        {
            "id": frame.id,
            "reason": "label_conflict",
            "score": 1.0,
            "twin": twin,
            "detail": "same sha256, labelled " + labels,
        }
    )


def _components(n: int, pairs: np.ndarray) -> np.ndarray:
    """Connected-component label per node (-1 for nodes in no pair)."""
    from scipy.sparse import coo_matrix
    from scipy.sparse.csgraph import connected_components

    if len(pairs) == 0:
        return np.full(n, -1)
    graph = coo_matrix((np.ones(len(pairs)), (pairs[:, 0], pairs[:, 1])), shape=(n, n))
    _, labels = connected_components(graph, directed=False)
    in_pair = np.zeros(n, dtype=bool)
    in_pair[pairs.ravel()] = True
    return np.where(in_pair, labels, -1)


def phash_pairs(
    hashes: np.ndarray, thumbs: np.ndarray, max_bits: int, min_corr: float
) -> tuple[np.ndarray, np.ndarray]:
    """Pairs (i < j, sorted) within `max_bits` pHash bits whose thumbnails correlate >= min_corr.

    Multi-index hashing (Norouzi et al., 2012): the 64 bits are cut into max_bits + 1 pieces, and two
    hashes within max_bits bits are equal on at least one piece (pigeonhole). So only the pairs that
    share a piece's value are compared on all 64 bits: about N^2 / 2^(64 / pieces) per piece against
    N^2 / 2 for all pairs (bench/clean_scale.py), with the same pairs found. Where the pieces would be
    too short to sort anything out (max_bits > 7), every pair is compared, a block at a time."""
    hashes = np.asarray(hashes, dtype=np.uint64)
    n = len(hashes)
    if n < 2:
        return np.zeros((0, 2), dtype=int), np.zeros(0)
    pairs = _close_pairs(hashes, max_bits) if max_bits <= 7 else _close_pairs_brute(hashes, max_bits)
    block = max(1, WORKING_BYTES // (2 * 4 * thumbs.shape[1]))  # pairs whose two float32 thumbnails fit
    corr = np.concatenate(
        [np.zeros(0)]
        + [
            _correlation(thumbs[pairs[s : s + block, 0]], thumbs[pairs[s : s + block, 1]])
            for s in range(0, len(pairs), block)
        ]
    )
    keep = corr >= min_corr
    return pairs[keep], corr[keep]


def _close_pairs(hashes: np.ndarray, max_bits: int) -> np.ndarray:
    """All pairs (i < j, sorted) within max_bits bits, by multi-index hashing (see phash_pairs)."""
    n, found = len(hashes), []
    bounds = np.linspace(0, 64, max_bits + 2).astype(int)
    for lo, hi in zip(bounds[:-1], bounds[1:]):
        key = (hashes >> np.uint64(lo)) & np.uint64((1 << int(hi - lo)) - 1)
        order = np.argsort(key, kind="stable")
        sorted_key = key[order]
        starts = np.flatnonzero(np.r_[True, sorted_key[1:] != sorted_key[:-1]])
        sizes = np.diff(np.r_[starts, n])
        bucket = np.repeat(np.arange(len(starts)), sizes)
        later = sizes[bucket] - (np.arange(n) - starts[bucket]) - 1  # rows after this one in its bucket
        at, gap = np.flatnonzero(later > 0), 1
        while at.size:  # the gap-th next row of the same bucket, for every row that has one
            i, j = order[at], order[at + gap]
            close = np.bitwise_count(hashes[i] ^ hashes[j]) <= max_bits
            found.append(np.sort(np.stack([i[close], j[close]], axis=1), axis=1))
            at, gap = at[later[at] > gap], gap + 1
    pairs = np.concatenate(found) if found else np.zeros((0, 2), dtype=np.int64)
    keys = np.unique(pairs[:, 0].astype(np.int64) * n + pairs[:, 1])  # a pair equal on several pieces once
    return np.stack([keys // n, keys % n], axis=1).astype(int)


def _close_pairs_brute(hashes: np.ndarray, max_bits: int) -> np.ndarray:
    """All pairs (i < j, sorted) within max_bits bits, every pair compared: a block of rows against
    all rows at a time, the block's XORs taking at most WORKING_BYTES."""
    n = len(hashes)
    block, found = max(1, WORKING_BYTES // (8 * n)), []
    for start in range(0, n, block):
        rows = np.arange(start, min(start + block, n))
        i, j = np.nonzero(np.bitwise_count(hashes[rows, None] ^ hashes[None, :]) <= max_bits)
        keep = j > rows[i]
        found.append(np.stack([rows[i[keep]], j[keep]], axis=1))
    return np.concatenate(found).astype(int)


def _correlation(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Pearson correlation of each row of `a` with the same row of `b` (0 where one is flat)."""
    a = a.astype(np.float32) - a.mean(axis=1, keepdims=True, dtype=np.float32)
    b = b.astype(np.float32) - b.mean(axis=1, keepdims=True, dtype=np.float32)
    norms = np.linalg.norm(a, axis=1) * np.linalg.norm(b, axis=1)
    return np.where(norms > 0, np.einsum("ij,ij->i", a, b) / np.where(norms > 0, norms, 1.0), 0.0)


def near_duplicates(index: pd.DataFrame, hashes, thumbs, vectors, params: dict) -> pd.DataFrame:
    """Near copies among `index` rows: pHash + thumbnail correlation, and/or embedding cosine."""
    pairs, scores, details = [], [], []
    if params["phash_bits"] is not None:
        p, r = phash_pairs(hashes, thumbs, params["phash_bits"], params["min_correlation"])
        bits = np.bitwise_count(hashes[p[:, 0]] ^ hashes[p[:, 1]]) if len(p) else np.array([], int)
        pairs.append(p)
        scores.append(r)
        details += [f"phash {b} bits, r={x:.3f}" for b, x in zip(bits, r)]
    if params["cosine"] is not None and len(index) > 1:
        dist, nbr = nearest(vectors, NEAR_NEIGHBOURS)
        i, col = np.nonzero(1.0 - dist >= params["cosine"])
        p = np.sort(np.stack([i, nbr[i, col]], axis=1), axis=1)
        sims = 1.0 - dist[i, col]
        pairs.append(p)
        scores.append(sims)
        details += [f"cosine {x:.3f}" for x in sims]
    if not pairs:
        return pd.DataFrame(columns=["id", "reason", "score", "twin", "detail"])
    pairs, scores = np.concatenate(pairs), np.concatenate(scores)
    groups = _components(len(index), pairs)
    # each copy's score and detail: its strongest link
    best = pd.DataFrame(
        {"node": np.r_[pairs[:, 0], pairs[:, 1]], "score": np.r_[scores, scores], "detail": details + details}
    ).sort_values("score", ascending=False)
    best = best.drop_duplicates("node").set_index("node")
    score = best.score.reindex(range(len(index))).to_numpy()
    detail = best.detail.astype(object).reindex(range(len(index))).fillna("").to_numpy()
    return _copies(index.reset_index(drop=True), groups, "near", score, detail)
