"""The galleries people look at before trusting the defaults: one PNG per reason, the removed
images highest score first, copies beside the image they copy; and the likely wrong labels, each
with its given and suggested label."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from specimen.artefacts import atomic_file
from specimen.clean.duplicates import DUPLICATE_REASONS
from specimen.shards import Shards

GALLERY_MAX = 40


def write_galleries(folder: Path, processed: Path, index: pd.DataFrame, removed: pd.DataFrame) -> None:
    """One PNG per reason: removed images, highest score first (copies beside their kept twin),
    captioned with id, split and score."""
    shards, where = Shards(processed / "shards"), index.set_index("id")
    for reason, rows in removed.groupby("reason"):
        total = len(rows)
        rows = rows.sort_values(["score", "id"], ascending=[False, True]).head(GALLERY_MAX)
        pairs = reason in DUPLICATE_REASONS
        shown = [
            [(r.id, f"{r.id}\n{r.split} · {r.score:.3g}")] + ([(r.twin, f"kept: {r.twin}")] if pairs else [])
            for r in rows.itertuples()
        ]
        more = f" (the {GALLERY_MAX} highest scores)" if total > GALLERY_MAX else ""
        lines = [r.id + (f" beside {r.twin}" if pairs else "") for r in rows.itertuples()]
        contact_sheet(folder / f"{reason}.png", shards, where, shown, f"{reason}: {total} removed{more}", lines)


def write_label_gallery(folder: Path, processed: Path, index: pd.DataFrame, issues: pd.DataFrame, action: str) -> None:
    """label_issue.png: each likely mislabelled training image (likeliest first) captioned with its
    given label, the suggested one and the model's probability for it."""
    shards, where = Shards(processed / "shards"), index.set_index("id")
    rows = issues.head(GALLERY_MAX)
    shown = [[(r.id, f"{r.id}\ngiven {r.label} → {r.suggested_label} ({r.confidence:.2f})")] for r in rows.itertuples()]
    more = f" (the {GALLERY_MAX} likeliest)" if len(issues) > GALLERY_MAX else ""
    done = {"flag": "flagged", "remove": "removed", "relabel": "relabelled"}[action]
    title = f"label_issue: {len(issues)} training images {done}{more}: given label → suggested (its probability)"
    lines = [f"{r.id} given {r.label} suggested {r.suggested_label}" for r in rows.itertuples()]
    contact_sheet(folder / "label_issue.png", shards, where, shown, title, lines)


def contact_sheet(path: Path, shards: Shards, where: pd.DataFrame, shown: list, title: str, lines: list[str]) -> None:
    """A sheet of captioned tiles, one group (an image, or an image and its twin) after another,
    drawn with Pillow (matplotlib spent hundreds of MiB resampling a sheet of 40 tiles). Its PNG
    carries the title and a line per group in the sheet's order, readable without looking."""
    from PIL import Image, ImageDraw, ImageFont
    from PIL.PngImagePlugin import PngInfo

    font = ImageFont.load_default(size=11)
    title_font = ImageFont.load_default(size=16)
    tiles = [[_tile(shards, where.loc[image_id]) for image_id, _ in group] for group in shown]
    per_row = 8 // len(shown[0])
    th, tw = tiles[0][0].shape[:2]
    cell_w = max(tw, 190) + 10  # room for a caption as wide as an id
    cell_h, caption, top = th + 40, 30, 34
    cols, n_rows = per_row * len(shown[0]), -(-len(shown) // per_row)
    sheet = Image.new("RGB", (max(cols * cell_w + 10, 12 + 9 * len(title)), top + n_rows * cell_h + 10), "white")
    draw = ImageDraw.Draw(sheet)
    draw.text((10, 8), title, fill="black", font=title_font)
    for i, group in enumerate(tiles):
        for j, tile in enumerate(group):
            x = 10 + ((i % per_row) * len(group) + j) * cell_w
            y = top + (i // per_row) * cell_h
            draw.multiline_text((x, y), shown[i][j][1], fill="black", font=font, spacing=2)
            sheet.paste(Image.fromarray(tile), (x, y + caption))
    text = PngInfo()
    text.add_text("Title", title)
    text.add_text("Description", "\n".join(lines))
    with atomic_file(path) as tmp:
        sheet.save(tmp, format="PNG", pnginfo=text)


def _tile(shards: Shards, row: pd.Series, side: int = 144) -> np.ndarray:
    """A processed image as an RGB tile, enlarged to about `side` pixels (nearest neighbour)."""
    img = shards.get([row["shard"]], [row["offset"]])[0]
    shards.release()  # a map per shard touched at random would keep megabytes of each resident
    if img.shape[2] == 1:
        img = np.repeat(img, 3, axis=2)
    scale = max(1, side // max(img.shape[:2]))
    return np.repeat(np.repeat(img, scale, axis=0), scale, axis=1)
