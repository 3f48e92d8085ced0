"""The ``specimen`` commands of download, extract, ingest, preprocess: the data phase (workflow/rules/data.smk)."""

from __future__ import annotations

import os
from pathlib import Path

from specimen.commands import arg, stage


@stage(
    "download",
    "put the dataset's archive in data/raw/ (demo, local:PATH, kaggle:OWNER/SLUG, url:URL#sha256=...)",
    "specimen.data.download",
    arg("out", type=Path, help="output folder, e.g. data/raw"),
)
def download(p, args):
    from specimen.data.download import download
    from specimen.data.localsource import update_link

    meta = download(p["dataset"]["source"], args.out, p["dataset"]["version"])
    project = os.environ.get("DVC_ROOT") or os.environ.get("SPECIMEN_PROJECT")  # run by DVC or Snakemake
    if project:
        update_link(p["dataset"]["source"], Path(project))  # what DVC hashes of a local: dataset
    return f"{meta['archive']} ({meta['bytes']} bytes, sha256 {meta['sha256'][:12]}...)"


@stage(
    "extract",
    "check data/raw/<archive> and list its files in data/extracted/files.csv (read in place), refusing hostile entries",
    "specimen.data.extract",
    arg("raw", type=Path, help="the download folder, e.g. data/raw"),
    arg("out", type=Path, help="output folder, e.g. data/extracted"),
)
def extract(p, args):
    from specimen.data.extract import extract

    e = p["extract"]
    r = extract(args.raw, args.out, e["max_total_mb"], e["max_ratio"], e["max_files"])
    skipped = f" ({r['skipped']} macOS/dotfile entries skipped)" if r["skipped"] else ""
    return f"{r['files']} files listed in {r['listing']}{skipped}"


@stage(
    "ingest",
    "account for every file: data/interim/manifest.csv and classes.json",
    "specimen.data.ingest",
    arg("extracted", type=Path, help="extract's output (its files.csv), e.g. data/extracted"),
    arg("out", type=Path, help="output folder for manifest.csv and classes.json, e.g. data/interim"),
)
def ingest(p, args):
    from specimen.data.ingest import ingest

    d = p["dataset"]
    m = ingest(
        args.extracted,
        args.out,
        d["split"],
        p["seed"],
        labels_file=d["labels_file"],
        columns=d["columns"],
        merge_train_valid=d["merge_train_valid"],
        max_pixels=p["image"]["max_pixels"],
    )
    ok, labels = m[m.status == "ok"], int((m.status == "labels").sum())
    return (
        f"{len(m)} files: {len(ok)} images in {ok.label.nunique()} classes, {(m.status == 'rejected').sum()} rejected"
        + (f", {labels} labels file{'s' * (labels > 1)}" if labels else "")
    )


@stage(
    "preprocess",
    "decode, EXIF-rotate, resize + pad to image.size; shards + index in data/processed/",
    "specimen.data.preprocess",
    arg("manifest", type=Path, help="e.g. data/interim/manifest.csv"),
    arg(
        "extracted",
        type=Path,
        help="extract's output, whose files.csv says where the manifest's paths lie, e.g. data/extracted",
    ),
    arg("out", type=Path, help="output folder, e.g. data/processed"),
)
def preprocess(p, args):
    from specimen.data.preprocess import preprocess

    kept = preprocess(args.manifest, args.extracted, args.out, p["image"], p["preprocess"]["shard_size"])
    return f"{kept} images of {p['image']['size'][0]}x{p['image']['size'][1]} into {args.out}"
