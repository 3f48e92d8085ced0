"""The ``specimen`` commands of embed, clean, balance: the clean phase (workflow/rules/clean.smk)."""

from __future__ import annotations

from pathlib import Path

from specimen.commands import arg, stage


@stage(
    "embed",
    "one feature vector per image: data/features/<extractor>.npz",
    "specimen.clean.embed",
    arg("processed", type=Path, help="e.g. data/processed"),
    arg("out", type=Path, help="e.g. data/features/histogram.npz"),
)
def embed(p, args):
    from specimen.clean.embed import embed

    n, dim = embed(args.processed, args.out, **p["embed"])  # extractor, batch_size, weights, clip_preset, input_size
    return f"{n} {p['embed']['extractor']} vectors of {dim} floats into {args.out}"


@stage(
    "clean",
    "remove duplicates, cross-split leaks and unusable images, flag (or remove) low-quality images, outliers "
    "and likely wrong labels: data/clean/ (index.csv, removed.csv, label_issues.csv, scores.csv, summary.json, "
    "galleries)",
    "specimen.clean.clean",
    arg("processed", type=Path, help="e.g. data/processed"),
    arg("features", type=Path, help="e.g. data/features/histogram.npz"),
    arg("out", type=Path, help="output folder, e.g. data/clean"),
)
def clean(p, args):
    from specimen.clean.clean import clean

    s = clean(args.processed, args.features, args.out, p["clean"], p["seed"])
    reasons = ", ".join(f"{k} {v}" for k, v in s["removed_by_reason"].items()) or "none"
    flagged = ", ".join(f"{k} {v}" for k, v in s["flagged_by_kind"].items()) or "none"
    labels = s["label_issues"]
    checked = f"{labels['found']} likely wrong" if labels["checked"] else f"not checked ({labels['why']})"
    return (
        f"{s['kept']} of {s['images']} images kept; removed: {reasons}; flagged: {flagged}; labels: {checked} "
        f"(see {args.out / 'removed.csv'}, {args.out / 'label_issues.csv'}, {args.out / 'summary.json'}, "
        f"{args.out / 'gallery'})"
    )


@stage(
    "balance",
    "training index (optionally oversampled) and class weights: data/clean/train.csv, class_weights.json",
    "specimen.clean.balance",
    arg("index", type=Path, help="e.g. data/clean/index.csv"),
    arg("out", type=Path, help="folder for train.csv and class_weights.json, e.g. data/clean"),
)
def balance(p, args):
    from specimen.clean.balance import balance

    r = balance(args.index, args.out, p["balance"], p["image"]["size"])
    added = sum(r["counts"].values()) - sum(r["counts_before_oversampling"].values())
    return (
        f"{len(r['weights'])} classes, {sum(r['counts'].values())} training rows ({added} oversampled copies), "
        f"weights {min(r['weights'].values()):.3g}..{max(r['weights'].values()):.3g}"
    )
