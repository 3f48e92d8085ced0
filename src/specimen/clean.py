"""clean: remove duplicates, cross-split leaks, low-quality images and outliers; score every image.

Steps, in order; an image removed by one step is not looked at by the next, and its first reason
is the one reported:

1. exact copies (``duplicates.exact``): the same file content (sha256).
2. near copies: pairs whose perceptual hashes (imagehash's pHash, 64 bits) differ in at most
   ``phash_bits`` bits and whose 32x32 grey thumbnails correlate at least ``min_correlation``;
   and, with ``cosine``, pairs among each image's nearest neighbours at least that similar in the
   embedding. Copies come first so that a copy is reported as one, beside the image it copies.
3. image quality (``quality``): cleanvision's properties and scores (dark, light, blurry,
   low_information, odd_aspect_ratio), computed by cleanvision's own code on each processed
   image's unpadded pixels (aspect ratio on the source file's size). A score below the threshold
   is the issue; per kind the image is removed, flagged (kept, named in ``flags``) or not checked.
4. outliers (``outliers``) over the embed features: ``knn`` is cleanlab's rule, the mean cosine
   distance to the k nearest images, flagged above Q3 + iqr_factor * IQR of those scores; ``lof``
   and ``isolation_forest`` are scikit-learn's, with ``contamination``. ``scope: class`` scores an
   image against its own class only (an image far from its class), ``all`` against every image,
   ``both`` removes either. Colour histograms are compared as square-rooted distributions (cosine
   of those is the Bhattacharyya coefficient), other features as they are.

Of each group of copies the one in the earliest split (train, valid, test; then by id) is kept. A
copy in the same split is a ``duplicate`` / ``near_duplicate``; a copy in a later split is a
``leak`` / ``near_leak``: it would score the model on an image it trained on.

A run that would remove every train or every test image stops with a one-line error instead:
training or evaluate would have nothing to work on.

Writes into the output folder (data/clean/):
- ``index.csv``: the kept images (the processed index, plus ``outlier_score`` and ``flags``);
- ``removed.csv``: id, split, label, reason, score, twin (the kept copy, for duplicates), detail;
- ``scores.csv``: every image's scores (quality, outlier, pHash) and what happened to it;
- ``summary.json``: counts per reason, per class and per split, before and after;
- ``class_counts.png``: images per class before and after cleaning, per split;
- ``gallery/<reason>.png``: the removed images of each reason, highest score first, with scores
  (duplicates beside the copy that was kept).
"""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
from tqdm import tqdm

from specimen import SpecimenError
from specimen.files import atomic_dir, atomic_file, save_figure, write_csv, write_json
from specimen.shards import Shards

SPLIT_ORDER = {"train": 0, "valid": 1, "test": 2}
REMOVED_COLUMNS = ["id", "split", "label", "reason", "score", "twin", "detail"]
QUALITY = ("dark", "light", "blurry", "low_information", "odd_aspect_ratio")
DUPLICATE_REASONS = ("duplicate", "leak", "near_duplicate", "near_leak")
GALLERY_MAX = 40
WORKING_BYTES = 64 * 2**20  # scratch memory for pairwise work (pHash XORs, scikit-learn's chunks)
NEAR_NEIGHBOURS = 10  # embedding near copies are looked for among each image's 10 nearest
THUMB = 32


# ----------------------------------------------------------------------------------------------
# Per-image properties: cleanvision's quality scores, pHash and a grey thumbnail, one pass
# ----------------------------------------------------------------------------------------------

def image_properties(processed: Path, index: pd.DataFrame, batch_size: int = 256):
    """(raw cleanvision properties as a DataFrame, pHashes as uint64, grey 32x32 thumbnails)."""
    import imagehash
    from cleanvision.issue_managers.image_property import (BlurrinessProperty, BrightnessProperty,
                                                           EntropyProperty)
    from PIL import Image

    props = [BrightnessProperty("dark"), EntropyProperty(), BlurrinessProperty()]
    raws, hashes = [], np.zeros(len(index), dtype=np.uint64)
    thumbs = np.zeros((len(index), THUMB * THUMB), dtype=np.uint8)
    row = 0
    shards = Shards(processed / "shards")
    with tqdm(total=len(index), desc="clean: image properties", unit="img", mininterval=1) as bar:
        for rows, images in shards.batches(index, batch_size):
            for (y0, x0, y1, x1), img in zip(rows[["y0", "x0", "y1", "x1"]].to_numpy(), images):
                pixels = np.ascontiguousarray(img[y0:y1, x0:x1])
                pil = Image.fromarray(pixels[..., 0] if pixels.shape[2] == 1 else pixels)
                raw = {}
                for prop in props:
                    raw.update(prop.calculate(pil))
                raws.append(raw)
                bits = imagehash.phash(pil).hash.flatten()
                hashes[row] = np.packbits(bits).view(">u8")[0]
                grey = pil.convert("L").resize((THUMB, THUMB), Image.Resampling.BILINEAR)
                thumbs[row] = np.asarray(grey).ravel()
                row += 1
            bar.update(len(rows))
    raw = pd.DataFrame(raws, index=index.index)
    w, h = index["width"].astype(float), index["height"].astype(float)
    raw["aspect_ratio"] = np.minimum(w / h, h / w)
    return raw, hashes, thumbs


def quality_scores(raw: pd.DataFrame) -> pd.DataFrame:
    """cleanvision's score per issue kind (lower is worse), from its own get_scores."""
    from cleanvision.issue_managers.image_property import (BlurrinessProperty, BrightnessProperty,
                                                           EntropyProperty)

    dark = BrightnessProperty("dark").get_scores(raw, "dark")["dark_score"]
    light = BrightnessProperty("light").get_scores(raw, "light")["light_score"]
    info = EntropyProperty().get_scores(raw, "low_information", normalizing_factor=0.1)["low_information_score"]
    blurry = BlurrinessProperty().get_scores(raw, "blurry", normalizing_factor=0.01,
                                             color_threshold=0.18)["blurry_score"]
    scores = pd.DataFrame({"dark": dark, "light": light, "blurry": blurry, "low_information": info,
                           "odd_aspect_ratio": raw["aspect_ratio"]}, index=raw.index)
    return scores.astype(float)


# ----------------------------------------------------------------------------------------------
# Duplicates
# ----------------------------------------------------------------------------------------------

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
    return pd.DataFrame({"id": copies.id, "reason": np.where(leak, names[1], names[0]),
                         "score": copies.score, "twin": keeper[copies.index], "detail": copies.detail})


def exact_duplicates(index: pd.DataFrame) -> pd.DataFrame:
    groups = index.groupby("sha256", sort=False).ngroup().to_numpy()
    sizes = np.bincount(groups)
    groups = np.where(sizes[groups] > 1, groups, -1)
    return _copies(index, groups, "exact", 1.0, "same sha256")


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


def phash_pairs(hashes: np.ndarray, thumbs: np.ndarray, max_bits: int, min_corr: float) -> tuple[np.ndarray, np.ndarray]:
    """Pairs (i < j) within `max_bits` pHash bits whose thumbnails correlate >= min_corr.

    A block of rows is compared with all rows at a time, the block sized so that its XORs take
    at most WORKING_BYTES; correlations are computed for candidate pairs only. Memory stays flat
    however many images there are."""
    block = max(1, WORKING_BYTES // (8 * max(len(hashes), 1)))
    found, corr = [], []
    n = len(hashes)
    for start in range(0, n, block):
        rows = np.arange(start, min(start + block, n))
        dist = np.bitwise_count(hashes[rows, None] ^ hashes[None, :])
        i, j = np.nonzero(dist <= max_bits)
        keep = j > rows[i]
        i, j = rows[i[keep]], j[keep]
        r = _correlation(thumbs[i], thumbs[j])
        found.append(np.stack([i[r >= min_corr], j[r >= min_corr]], axis=1))
        corr.append(r[r >= min_corr])
    return np.concatenate(found).astype(int), np.concatenate(corr)


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
    best = pd.DataFrame({"node": np.r_[pairs[:, 0], pairs[:, 1]], "score": np.r_[scores, scores],
                         "detail": details + details}).sort_values("score", ascending=False)
    best = best.drop_duplicates("node").set_index("node")
    score = best.score.reindex(range(len(index))).to_numpy()
    detail = best.detail.astype(object).reindex(range(len(index))).fillna("").to_numpy()
    return _copies(index.reset_index(drop=True), groups, "near", score, detail)


# ----------------------------------------------------------------------------------------------
# Outliers
# ----------------------------------------------------------------------------------------------

def comparable(features: np.ndarray, extractor: str) -> np.ndarray:
    """Features as compared by cosine: histograms square-rooted (Hellinger), others as they are."""
    features = np.asarray(features, dtype=np.float32)
    if extractor == "histogram":
        sums = features.sum(axis=1, keepdims=True)
        return np.sqrt(features / np.where(sums > 0, sums, 1.0))
    return features


def nearest(features: np.ndarray, k: int):
    """(cosine distances, indices) of each row's k nearest other rows.

    Rows are normalised once and searched by squared euclidean distance (scikit-learn's fast
    path; for unit vectors it is twice the cosine distance), in chunks of WORKING_BYTES."""
    from sklearn import config_context
    from sklearn.neighbors import NearestNeighbors

    k = min(k, len(features) - 1)
    norms = np.linalg.norm(features, axis=1, keepdims=True)
    unit = features / np.where(norms > 0, norms, 1.0)
    model = NearestNeighbors(n_neighbors=k + 1, metric="sqeuclidean", algorithm="brute").fit(unit)
    with config_context(working_memory=WORKING_BYTES // 2**20):
        dist, idx = model.kneighbors(unit)
    dist = np.clip(dist / 2.0, 0.0, 2.0)
    # drop each row itself (normally column 0; with exact twins it may sit elsewhere)
    is_self = idx == np.arange(len(features))[:, None]
    drop = np.where(is_self.any(axis=1), np.argmax(is_self, axis=1), k)
    mask = np.ones_like(idx, dtype=bool)
    mask[np.arange(len(idx)), drop] = False
    return dist[mask].reshape(len(idx), k), idx[mask].reshape(len(idx), k)


def iqr_threshold(scores: np.ndarray, factor: float) -> float:
    q1, q3 = np.percentile(scores, [25, 75])
    return float(q3 + factor * (q3 - q1))


def outliers(features: np.ndarray, params: dict, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """(score, is_outlier) for each row: higher scores are more anomalous."""
    method, k = params["method"], params["k"]
    n = len(features)
    if n < 3:
        return np.zeros(n), np.zeros(n, dtype=bool)
    if method == "knn":
        score = nearest(features, k)[0].mean(axis=1)
        return score, score > iqr_threshold(score, params["iqr_factor"])
    if method == "lof":
        from sklearn.neighbors import LocalOutlierFactor

        from sklearn import config_context

        lof = LocalOutlierFactor(n_neighbors=min(k, n - 1), metric="cosine", contamination=params["contamination"])
        with config_context(working_memory=WORKING_BYTES // 2**20):
            flags = lof.fit_predict(features) == -1
        return -lof.negative_outlier_factor_, flags
    from sklearn.ensemble import IsolationForest

    forest = IsolationForest(n_estimators=200, contamination=params["contamination"], random_state=seed)
    flags = forest.fit_predict(features) == -1
    return -forest.score_samples(features), flags


def outlier_scores(features, labels, params, seed):
    """(overall score, class score, flagged) under params['scope']; NaN where not scored."""
    n = len(features)
    overall, by_class = np.full(n, np.nan), np.full(n, np.nan)
    flagged = np.zeros(n, dtype=bool)
    if params["scope"] in ("all", "both"):
        overall, flags = outliers(features, params, seed)
        flagged |= flags
    if params["scope"] in ("class", "both"):
        for label in np.unique(labels):
            rows = np.flatnonzero(labels == label)
            score, flags = outliers(features[rows], params, seed)
            by_class[rows] = score
            flagged[rows] |= flags
    return overall, by_class, flagged


# ----------------------------------------------------------------------------------------------
# The stage
# ----------------------------------------------------------------------------------------------

def clean(processed: Path, features_path: Path, out_dir: Path, params: dict, seed: int) -> dict:
    # text columns as text: a label such as "01", "1e3" or "True" must stay what it is
    index = pd.read_csv(processed / "index.csv", keep_default_na=False,
                        dtype={"id": str, "label": str, "split": str, "sha256": str})
    with np.load(features_path) as npz:
        ids, features = npz["ids"], npz["features"]
        extractor = str(npz["extractor"]) if "extractor" in npz else Path(features_path).stem
    if list(ids) != index.id.tolist():
        raise SpecimenError(f"{features_path} does not match {processed / 'index.csv'}: re-run embed")
    n = len(index)
    raw, hashes, thumbs = image_properties(processed, index)
    quality = quality_scores(raw)
    gone = np.zeros(n, dtype=bool)  # removed by an earlier step
    removed = []

    def remove(rows: pd.DataFrame) -> None:
        rows = rows[~rows.id.isin(set(index.id[gone]))]
        gone[index.id.isin(set(rows.id)).to_numpy()] = True
        removed.append(rows)

    def left() -> np.ndarray:
        return np.flatnonzero(~gone)

    # 1. copies: exact, then near, so that a copy is reported as one (with its twin)
    if params["duplicates"]["exact"]:
        remove(exact_duplicates(index))
    rows = left()
    if len(rows) > 1:
        vectors = comparable(features[rows], extractor) if params["duplicates"]["cosine"] is not None else None
        remove(near_duplicates(index.iloc[rows], hashes[rows], thumbs[rows], vectors, params["duplicates"]))
    # 2. image quality
    flags = pd.Series("", index=index.index, dtype=object)
    for kind in QUALITY:
        check = params["quality"][kind]
        if check["action"] == "off":
            continue
        hit = quality[kind] < check["threshold"]
        if check["action"] == "flag":
            flags[hit] = flags[hit] + np.where(flags[hit] == "", "", ";") + kind
        else:
            live = hit & ~gone
            remove(pd.DataFrame({"id": index.id[live], "reason": kind, "score": quality[kind][live],
                                 "twin": "", "detail": f"{kind} score < {check['threshold']}"}))
    # 3. outliers, among the images left
    rows = left()
    overall, by_class = np.full(n, np.nan), np.full(n, np.nan)
    if params["outliers"]["method"] != "none" and len(rows) > 2:
        o, c, flagged = outlier_scores(comparable(features[rows], extractor), index.label.to_numpy()[rows],
                                       params["outliers"], seed)
        overall[rows], by_class[rows] = o, c
        out = rows[flagged]
        remove(pd.DataFrame({"id": index.id.to_numpy()[out], "reason": "outlier",
                             "score": np.fmax(overall[out], by_class[out]), "twin": "",
                             "detail": f"{params['outliers']['method']} ({params['outliers']['scope']})"}))

    removed = pd.concat(removed) if removed else pd.DataFrame(columns=["id", "reason", "score", "twin", "detail"])
    removed = removed.merge(index[["id", "split", "label"]], on="id").reindex(columns=REMOVED_COLUMNS)
    removed = removed.sort_values("id", kind="stable").reset_index(drop=True)
    index["outlier_score"] = np.round(np.nan_to_num(np.fmax(overall, by_class), nan=0.0), 6)
    index["flags"] = flags
    kept = index[~index.id.isin(set(removed.id))]
    check_splits_left(index, kept, removed)
    scores = index[["id", "split", "label"]].assign(
        **{f"{k}_score": quality[k].round(6) for k in QUALITY},
        outlier_score=np.round(overall, 6), class_outlier_score=np.round(by_class, 6),
        phash=[f"{h:016x}" for h in hashes], flags=flags,
        reason=index.id.map(removed.set_index("id").reason).astype(object).fillna("kept"))
    summary = summarise(index, removed, flags, extractor, params)
    with atomic_dir(out_dir / "gallery") as tmp:
        write_galleries(tmp, processed, index, removed)
    write_csv(out_dir / "scores.csv", scores)
    write_json(out_dir / "summary.json", summary)
    plot_class_counts(out_dir / "class_counts.png", index, kept)
    write_csv(out_dir / "removed.csv", removed)
    write_csv(out_dir / "index.csv", kept)
    return summary


def check_splits_left(index: pd.DataFrame, kept: pd.DataFrame, removed: pd.DataFrame) -> None:
    """Refuse to remove every train or every test image: training or evaluate would have nothing."""
    for split, stage in (("train", "training"), ("test", "evaluate")):
        if (index.split == split).any() and not (kept.split == split).any():
            gone = removed[removed.split == split].reason.value_counts()
            reasons = ", ".join(f"{reason} {n}" for reason, n in gone.items())
            leaks = "replace the test images that copy training or validation images (leak), or " if split == "test" else ""
            raise SpecimenError(f"clean would remove every {split} image ({reasons}), leaving {stage} nothing: "
                                f"{leaks}relax clean.duplicates, clean.quality or clean.outliers")


# ----------------------------------------------------------------------------------------------
# For people: summary, class counts, galleries
# ----------------------------------------------------------------------------------------------

def summarise(index: pd.DataFrame, removed: pd.DataFrame, flags: pd.Series, extractor: str, params: dict) -> dict:
    def counts(frame, key):
        return {str(k): int(v) for k, v in frame.groupby(key).size().items()}

    kept = index[~index.id.isin(set(removed.id))]
    flag_counts = pd.Series([f for fs in flags if fs for f in fs.split(";")]).value_counts()
    return {
        "features": extractor,
        "images": len(index), "kept": len(kept), "removed": len(removed),
        "removed_by_reason": counts(removed, "reason"),
        "flagged_by_kind": {str(k): int(v) for k, v in flag_counts.sort_index().items()},
        "per_split": {s: {"before": int((index.split == s).sum()), "after": int((kept.split == s).sum()),
                          "removed": counts(removed[removed.split == s], "reason")}
                      for s in SPLIT_ORDER if (index.split == s).any()},
        "per_class": {str(c): {"before": int((index.label == c).sum()), "after": int((kept.label == c).sum()),
                               "removed": counts(removed[removed.label == c], "reason")}
                      for c in sorted(index.label.unique(), key=str)},
        "settings": {"quality": params["quality"], "outliers": params["outliers"],
                     "duplicates": params["duplicates"]},
    }


def _figure(*args, **kwargs):
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt, plt.subplots(*args, **kwargs)


def plot_class_counts(path: Path, index: pd.DataFrame, kept: pd.DataFrame) -> None:
    classes = sorted(index.label.unique(), key=str)
    splits = [s for s in SPLIT_ORDER if (index.split == s).any()]
    plt, (fig, axes) = _figure(1, len(splits), figsize=(max(6, 0.35 * len(classes) * len(splits) + 2), 4),
                               squeeze=False, sharey=False)
    x = np.arange(len(classes))
    for ax, split in zip(axes[0], splits):
        before = index[index.split == split].label.value_counts().reindex(classes, fill_value=0)
        after = kept[kept.split == split].label.value_counts().reindex(classes, fill_value=0)
        ax.bar(x - 0.2, before.to_numpy(), 0.4, label="before", color="#bbbbbb")
        ax.bar(x + 0.2, after.to_numpy(), 0.4, label="after cleaning", color="#3b75af")
        ax.set_title(f"{split}: {int(before.sum())} -> {int(after.sum())} images")
        ax.set_xticks(x, [str(c) for c in classes], rotation=90 if len(classes) > 12 else 0)
        ax.set_xlabel("class")
    axes[0][0].set_ylabel("images")
    axes[0][0].legend()
    fig.tight_layout()
    save_figure(fig, path)
    plt.close(fig)


def write_galleries(folder: Path, processed: Path, index: pd.DataFrame, removed: pd.DataFrame) -> None:
    """One PNG per reason: removed images, highest score first (copies beside their kept twin),
    captioned with id, split and score. A contact sheet drawn with Pillow: matplotlib spent
    hundreds of MiB resampling a sheet of 40 tiles."""
    from PIL import Image, ImageDraw, ImageFont

    font = ImageFont.load_default(size=11)
    title_font = ImageFont.load_default(size=16)
    shards = Shards(processed / "shards")
    where = index.set_index("id")
    for reason, rows in removed.groupby("reason"):
        total = len(rows)
        rows = rows.sort_values(["score", "id"], ascending=[False, True]).head(GALLERY_MAX)
        pairs = reason in DUPLICATE_REASONS
        per_row = 4 if pairs else 8
        shown = [[(r.id, f"{r.id}\n{r.split} · {r.score:.3g}")] + ([(r.twin, f"kept: {r.twin}")] if pairs else [])
                 for r in rows.itertuples()]
        tiles = [[_tile(shards, where.loc[image_id]) for image_id, _ in group] for group in shown]
        th, tw = tiles[0][0].shape[:2]
        cell_w = max(tw, 190) + 10  # room for a caption as wide as an id
        cell_h, caption, top = th + 40, 30, 34
        cols, n_rows = per_row * len(shown[0]), -(-len(shown) // per_row)
        sheet = Image.new("RGB", (cols * cell_w + 10, top + n_rows * cell_h + 10), "white")
        draw = ImageDraw.Draw(sheet)
        more = f" (the {GALLERY_MAX} highest scores)" if total > GALLERY_MAX else ""
        draw.text((10, 8), f"{reason}: {total} removed{more}", fill="black", font=title_font)
        for i, group in enumerate(tiles):
            for j, tile in enumerate(group):
                x = 10 + ((i % per_row) * len(group) + j) * cell_w
                y = top + (i // per_row) * cell_h
                draw.multiline_text((x, y), shown[i][j][1], fill="black", font=font, spacing=2)
                sheet.paste(Image.fromarray(tile), (x, y + caption))
        with atomic_file(folder / f"{reason}.png") as tmp:
            sheet.save(tmp, format="PNG")


def _tile(shards: Shards, row: pd.Series, side: int = 144) -> np.ndarray:
    """A processed image as an RGB tile, enlarged to about `side` pixels (nearest neighbour)."""
    img = shards.get([row["shard"]], [row["offset"]])[0]
    shards.release()  # a map per shard touched at random would keep megabytes of each resident
    if img.shape[2] == 1:
        img = np.repeat(img, 3, axis=2)
    scale = max(1, side // max(img.shape[:2]))
    return np.repeat(np.repeat(img, scale, axis=0), scale, axis=1)
