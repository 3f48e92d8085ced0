"""The ``specimen`` commands of search and autoencoder (workflow/rules/tools.smk, stages off the default target), and the commands people run by hand: predict, pull, dvc-commit, params."""

from __future__ import annotations

from pathlib import Path

from specimen.commands import arg, model_and_data, stage, tool


@stage(
    "search",
    "the images of a folder or zip nearest to an image, by colour histogram (or clip/vgg16 "
    "features): a filename,distance table",
    "specimen.tools.search",
    arg("target", help="an image file, or a file name or path inside --images (e.g. roses/12.jpg)"),
    arg(
        "--images",
        "--data",  # its name in specimen 0.1, accepted until 0.3
        dest="images",
        type=Path,
        required=True,
        help="a folder of images or a zip, e.g. data/extracted (--data: the same, its old name)",
    ),
    arg("-n", type=int, help="how many nearest images to list after the target (default: search.n)"),
    arg(
        "--features",
        help="histogram, clip, vgg16 or another keras.applications backbone "
        "(default: search.features; networks use embed.weights, embed.input_size)",
    ),
    arg("--out", type=Path, help="write the table to this CSV instead of printing it, e.g. results/search/12.jpg.csv"),
)
def search(p, args):
    from specimen.tools.search import search

    s = p["search"]
    r = search(
        args.target,
        args.images,
        args.out,
        s["n"] if args.n is None else args.n,
        args.features or s["features"],
        image=p["image"],
        embed=p["embed"],
    )
    if args.out is None:
        print(r["table"].to_string(index=False, float_format=lambda v: f"{v:.6g}"))
    files = "file" if r["skipped"] == 1 else "files"
    skipped = f", {r['skipped']} other {files} skipped (not images OpenCV can read)" if r["skipped"] else ""
    where = f"; table in {args.out}" if args.out else ""
    return f"{len(r['table']) - 1} nearest of {r['images']} images in {args.images} to {r['target']}{skipped}{where}"


@stage(
    "autoencoder",
    "optional: a denoising convolutional autoencoder of one class, its reconstructions and "
    "generated images: results/autoencoder/<class>/",
    "specimen.tools.autoencoder",
    *model_and_data(
        "results/autoencoder/0 (the class in autoencoder.class)",
        "the classifier that scores the generated images, e.g. results/models/small_cnn",
    ),
)
def autoencoder(p, args):
    from specimen.tools.autoencoder import autoencoder

    m = autoencoder(args.model_dir, args.data, args.index, args.classes, args.out, p["autoencoder"], p["seed"])
    return (
        f"class {m['class']}: test MSE {m['reconstruction_mse']:.5f} denoised vs {m['noisy_mse']:.5f} noisy; "
        f"the classifier calls {m['generated_accuracy']:.1%} of {m['generated_images']} generated images "
        f"{m['class']} (see {args.out})"
    )


@tool(
    "predict",
    "the top-k classes of an image or a folder of images, preprocessed as the model's training data was",
    "specimen.tools.predict",
    arg("model", help="a model folder (holding model.keras and meta.json), or a name under results/models/"),
    arg("target", type=Path, metavar="IMAGE_OR_DIR", help="an image, or a folder searched recursively"),
    arg("--top-k", type=int, default=5, help="classes per image (default 5, at most the number of classes)"),
    arg("--out", type=Path, help="write the rows to this CSV instead of printing a table"),
    arg(
        "--unsafe",
        action="store_true",
        help="load a model that holds Lambda layers (their Python code runs): only one you trust",
    ),
)
def predict(p, args):
    from specimen.tools.predict import predict, table

    rows = predict(
        args.model, args.target, args.top_k, args.out, max_pixels=p["image"]["max_pixels"], unsafe=args.unsafe
    )
    if args.out is None:
        print(table(rows))
    errors = int(rows.error.astype(bool).sum())
    where = f" into {args.out}" if args.out else ""
    return f"{len(rows) - errors} of {len(rows)} files predicted{where}; {errors} unreadable (see their error column)"


@tool(
    "pull",
    "a teammate's pull: dvc pull (TARGETS with what they need, or everything), then mark it current for Snakemake",
    "specimen.dvcsync",
    arg(
        "targets",
        nargs="*",
        help="DVC stages or outputs, e.g. train@small_cnn or results/models/small_cnn/model.keras "
        "(pulled with every stage they depend on); none: everything",
    ),
    arg("-r", "--remote", help="the DVC remote to pull from (default: the one .dvc/config names)"),
)
def pull(p, args):
    from specimen.dvcsync import pull

    r = pull(Path.cwd(), args.targets, args.remote)
    stale = f"; differ from dvc.lock, left as they are: {', '.join(r['stale'])}" if r["stale"] else ""
    return f"{r['fetched']} files fetched; {len(r['current'])} stages current for Snakemake{stale}" + (
        f"; not pulled: {', '.join(r['missing'])}" if r["missing"] else ""
    )


@tool(
    "dvc-commit",
    "make dvc.lock say what Snakemake knows: record what it calls current, forget what it would run "
    "(Snakemake runs this when a run ends)",
    "specimen.dvcsync",
)
def dvc_commit(p, args):
    from specimen.dvcsync import commit_finished

    r = commit_finished(Path.cwd())
    said = [f"recorded {len(r['committed'])} DVC stages"]
    if r["out_of_date"]:
        forgotten = f" (their records removed: {', '.join(r['forgotten'])})" if r["forgotten"] else ""
        said.append(f"out of date, to run again: {', '.join(r['out_of_date'])}{forgotten}")
    if r["not_run"]:
        said.append(f"not yet run: {', '.join(r['not_run'])}")
    return "; ".join(said)


@tool(
    "params",
    "params.yaml with the schema's defaults filled in; --fill writes in the keys it leaves out",
    "specimen.params",
    arg(
        "--fill",
        action="store_true",
        help="write every key the file leaves to the schema's defaults into it, "
        "with its default, keeping its comments (DVC reads the file as written, so every key must be there)",
    ),
)
def params(p, args):
    from specimen.params import fill

    if args.fill:
        written = fill(args.params)
        return (
            f"wrote {len(written)} keys into {args.params}: {', '.join(written)}"
            if written
            else f"{args.params} already writes out every key"
        )
    import yaml

    print(yaml.safe_dump(p, sort_keys=False), end="")
