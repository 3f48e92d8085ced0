"""predict: the top-k classes of one image, or of every image in a folder, with a trained model.

MODEL is a model folder (``results/models/<name>``: ``model.keras`` and ``meta.json``), or just
a model's name, looked up under results/models/. Each image goes through exactly the
preprocessing its model was trained on, read from ``meta.json`` (``image.size``, the resize mode
pad / crop / stretch, rgb or grey): the same decoding code as the preprocess stage, so an image
reaches the model with the very pixels preprocess would have stored for it. ``image.max_pixels``
(params.yaml) refuses decompression bombs, as preprocess does.

A folder is searched recursively, in sorted order (hidden files and folders skipped), and read a
batch at a time, so memory does not grow with the number of images. Each image is one row:
``path``, then ``label_1``, ``prob_1`` ... ``label_K``, ``prob_K`` (most likely first;
probabilities rounded to 6 digits; K is ``--top-k``, at most the number of classes), then
``error``: empty, or why the file could not be read (not an image, corrupt, too large). With
``--out``, the rows are written to that CSV; without, they are printed as a table.
"""

from __future__ import annotations

import contextlib
import json
from pathlib import Path

import numpy as np
import pandas as pd
from tqdm import tqdm

from specimen import SpecimenError
from specimen.artefacts import write_csv

MODELS_ROOT = Path("results/models")
BAR_FROM = 100  # a progress bar when there are at least this many images


def predict(
    model: str | Path,
    target: str | Path,
    top_k: int = 5,
    out: Path | None = None,
    batch_size: int = 64,
    max_pixels: int | None = None,
    models_root: Path = MODELS_ROOT,
    unsafe: bool = False,
) -> pd.DataFrame:
    """Predict every image of `target` (a file or a folder) with `model`; write the rows to `out`
    (a CSV) if given. Returns the rows (columns: see the module docstring). A model with Lambda
    layers is refused unless `unsafe` (see models.load)."""
    if top_k < 1:
        raise SpecimenError(f"--top-k {top_k}: must be at least 1")
    folder = model_folder(model, models_root)
    meta = read_meta(folder)
    paths = image_paths(target)
    k = min(top_k, len(meta["classes"]))
    from specimen.train.models import load  # TensorFlow only once the arguments are known to be good

    net = load(folder / "model.keras", unsafe=unsafe)
    rows = []
    with (
        pillow_limit(max_pixels),
        tqdm(total=len(paths), desc="predict", unit="img", disable=len(paths) < BAR_FROM, mininterval=1) as bar,
    ):
        for start in range(0, len(paths), batch_size):
            batch = paths[start : start + batch_size]
            rows.extend(predict_batch(net, batch, meta, k, max_pixels))
            bar.update(len(batch))
    frame = pd.DataFrame(rows, columns=columns(k))
    frame["error"] = frame["error"].fillna("")
    if out is not None:
        write_csv(out, frame)
    return frame


def model_folder(model: str | Path, models_root: Path = MODELS_ROOT) -> Path:
    """The folder of `model`: a folder, a model.keras file's folder, or a name under `models_root`."""
    path = Path(model)
    if path.is_file() and path.name == "model.keras":
        path = path.parent
    if path.is_dir():
        return path
    if len(path.parts) == 1 and (Path(models_root) / path).is_dir():
        return Path(models_root) / path
    raise SpecimenError(
        f"{model}: no such model folder (nor {Path(models_root) / path.name}); "
        f"train it first, e.g. `snakemake results/models/{path.name}/model.keras`"
    )


def read_meta(folder: Path) -> dict:
    """meta.json beside the model: its classes and the preprocessing it was trained with."""
    if not (folder / "model.keras").is_file():
        raise SpecimenError(f"{folder}: no model.keras in this folder; train the model first")
    meta_path = folder / "meta.json"
    if not meta_path.is_file():
        raise SpecimenError(
            f"{folder}: no meta.json beside model.keras, so its preprocessing is unknown; "
            "retrain the model with this version of specimen"
        )
    meta = json.loads(meta_path.read_text(encoding="utf-8"))
    if not {"classes", "preprocess"} <= set(meta):
        raise SpecimenError(
            f"{meta_path}: written by an older specimen (no preprocessing recorded); "
            "retrain the model with this version of specimen"
        )
    return meta


def image_paths(target: str | Path) -> list[Path]:
    """`target` itself if it is a file; every file under it, recursively and sorted, if a folder."""
    target = Path(target)
    if target.is_file():
        return [target]
    if not target.is_dir():
        raise SpecimenError(f"{target}: no such file or folder")
    return sorted(
        p
        for p in target.rglob("*")
        if p.is_file() and not any(part.startswith(".") for part in p.relative_to(target).parts)
    )


@contextlib.contextmanager
def pillow_limit(max_pixels: int | None):
    """Pillow's own bomb guard at `max_pixels`, as in preprocess's workers, for the block only."""
    from PIL import Image

    saved = Image.MAX_IMAGE_PIXELS
    if max_pixels:
        Image.MAX_IMAGE_PIXELS = max_pixels
    try:
        yield
    finally:
        Image.MAX_IMAGE_PIXELS = saved


def top_k_rows(paths: list[Path], probs: np.ndarray, classes: list[str], k: int) -> list[dict]:
    """One row per image: its k most likely classes, most likely first (ties: the lower class id)."""
    order = np.argsort(-probs, axis=1, kind="stable")[:, :k]
    rows = []
    for path, p, top in zip(paths, probs, order):
        row = {"path": str(path)}
        for r, c in enumerate(top, start=1):
            row[f"label_{r}"], row[f"prob_{r}"] = classes[c], round(float(p[c]), 6)
        rows.append({**row, "error": ""})
    return rows


def columns(k: int) -> list[str]:
    return ["path", *[f"{name}_{r}" for r in range(1, k + 1) for name in ("label", "prob")], "error"]


def predict_batch(model, paths: list[Path], meta: dict, k: int, max_pixels: int | None) -> list[dict]:
    """Decode a batch as preprocess would, predict the images that decode; rows in `paths` order."""
    from specimen.data.images import load_image

    pre = meta["preprocess"]
    height, width = pre["size"]
    decoded, reasons = [], {}
    for path in paths:
        image, _, reason = load_image(str(path), height, width, pre["color"], pre["resize"], max_pixels)
        if image is None:
            reasons[path] = reason
        else:
            decoded.append((path, image))
    rows = {}
    if decoded:
        probs = np.asarray(model.predict_on_batch(np.stack([im for _, im in decoded])), dtype=np.float64)
        rows = {row["path"]: row for row in top_k_rows([p for p, _ in decoded], probs, meta["classes"], k)}
    return [rows[str(p)] if p not in reasons else {"path": str(p), "error": reasons[p]} for p in paths]


def table(frame: pd.DataFrame) -> str:
    """The rows as a readable table: path, then "label prob" per rank, then any error."""
    k = (len(frame.columns) - 2) // 2
    shown = pd.DataFrame({"path": frame.path})
    for r in range(1, k + 1):
        shown[f"#{r}"] = [
            f"{label} {prob:.4f}" if isinstance(label, str) and label else ""
            for label, prob in zip(frame[f"label_{r}"], frame[f"prob_{r}"])
        ]
    if frame.error.astype(bool).any():
        shown["error"] = frame.error
    widths = {c: max([len(c), *(len(v) for v in shown[c].astype(str))]) for c in shown.columns}
    lines = ["  ".join(c.ljust(widths[c]) for c in shown.columns)]
    lines += ["  ".join(str(v).ljust(widths[c]) for c, v in row.items()) for _, row in shown.iterrows()]
    return "\n".join(line.rstrip() for line in lines)
