"""What each ``specimen`` command reads, writes and says: its arguments, declared with it, and a
runner that calls the library and returns the one line printed when it is done.

``@stage`` marks the DAG's stages (what Snakemake's rules and DVC's stages run; specimen.codedeps
reads each one's imports to derive the code it runs); ``@tool`` the others. A runner imports its
library module when it runs, so that ``specimen --help`` or a bad argument never starts TensorFlow.
"""
from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

COMMANDS: dict[str, Command] = {}


@dataclass(frozen=True)
class Command:
    name: str
    help: str
    module: str  # whose docstring `specimen NAME --help` shows
    arguments: tuple  # (flags, argparse keywords) pairs
    run: object  # run(params, args) -> the line to print, or None
    dag: bool


def arg(*flags, **kwargs) -> tuple:
    return flags, kwargs


def stage(name: str, help: str, module: str, *arguments):
    """A DAG stage: Snakemake and DVC run `specimen NAME ...`."""
    def register(run):
        COMMANDS[name] = Command(name, help, module, arguments, run, dag=True)
        return run
    return register


def tool(name: str, help: str, module: str, *arguments):
    """A command people run by hand (or that Snakemake runs around the DAG, as dvc-commit)."""
    def register(run):
        COMMANDS[name] = Command(name, help, module, arguments, run, dag=False)
        return run
    return register


# The arguments several commands take.
DATA = (arg("--data", type=Path, required=True, help="processed images, e.g. data/processed"),
        arg("--index", type=Path, required=True, help="the clean index, e.g. data/clean/index.csv"),
        arg("--classes", type=Path, required=True, help="e.g. data/interim/classes.json"))


def model_and_data(out_example: str, model_help: str = "e.g. results/models/small_cnn") -> tuple:
    """What evaluate, explain and autoencoder read: a trained model's folder and the data; and where to write."""
    return (arg("model_dir", type=Path, help=model_help), *DATA,
            arg("--out", type=Path, required=True, help=f"e.g. {out_example}"))


def training(out_example: str) -> tuple:
    """What train and tune both read: the model's name, the data, balance's rows and weights."""
    return (arg("model", help="a name from train.models, e.g. small_cnn"), *DATA,
            arg("--train", type=Path, required=True, help="balance's training index, e.g. data/clean/train.csv"),
            arg("--weights", type=Path, required=True, help="e.g. data/clean/class_weights.json"),
            arg("--out", type=Path, required=True, help=f"e.g. {out_example}"))


# -- data ----------------------------------------------------------------------------------------

@stage("download", "put the dataset's archive in data/raw/ (demo, local:PATH, kaggle:OWNER/SLUG, url:URL#sha256=...)",
       "specimen.data.download", arg("out", type=Path, help="output folder, e.g. data/raw"))
def download(p, args):
    from specimen.data.download import download
    from specimen.data.localsource import update_link

    meta = download(p["dataset"]["source"], args.out, p["dataset"]["version"])
    project = os.environ.get("DVC_ROOT") or os.environ.get("SPECIMEN_PROJECT")  # run by DVC or Snakemake
    if project:
        update_link(p["dataset"]["source"], Path(project))  # what DVC hashes of a local: dataset
    return f"{meta['archive']} ({meta['bytes']} bytes, sha256 {meta['sha256'][:12]}...)"


@stage("extract", "unpack data/raw/<archive> into data/extracted/<name>/, refusing hostile entries",
       "specimen.data.extract", arg("raw", type=Path, help="the download folder, e.g. data/raw"),
       arg("out", type=Path, help="output folder, e.g. data/extracted"))
def extract(p, args):
    from specimen.data.extract import extract

    e = p["extract"]
    r = extract(args.raw, args.out, e["max_total_mb"], e["max_ratio"], e["max_files"])
    skipped = f" ({r['skipped']} macOS/dotfile entries skipped)" if r["skipped"] else ""
    return f"{r['files']} files into {r['target']}{skipped}"


@stage("ingest", "account for every file: data/interim/manifest.csv and classes.json", "specimen.data.ingest",
       arg("extracted", type=Path, help="the extracted folder, e.g. data/extracted"),
       arg("out", type=Path, help="output folder for manifest.csv and classes.json, e.g. data/interim"))
def ingest(p, args):
    from specimen.data.ingest import ingest

    d = p["dataset"]
    m = ingest(args.extracted, args.out, d["split"], p["seed"], labels_file=d["labels_file"], columns=d["columns"],
               merge_train_valid=d["merge_train_valid"], max_pixels=p["image"]["max_pixels"])
    ok, labels = m[m.status == "ok"], int((m.status == "labels").sum())
    return (f"{len(m)} files: {len(ok)} images in {ok.label.nunique()} classes, {(m.status == 'rejected').sum()} rejected"
            + (f", {labels} labels file{'s' * (labels > 1)}" if labels else ""))


@stage("preprocess", "decode, EXIF-rotate, resize + pad to image.size; shards + index in data/processed/",
       "specimen.data.preprocess", arg("manifest", type=Path, help="e.g. data/interim/manifest.csv"),
       arg("extracted", type=Path, help="the folder the manifest's paths are relative to, e.g. data/extracted"),
       arg("out", type=Path, help="output folder, e.g. data/processed"))
def preprocess(p, args):
    from specimen.data.preprocess import preprocess

    kept = preprocess(args.manifest, args.extracted, args.out, p["image"], p["preprocess"]["shard_size"])
    return f"{kept} images of {p['image']['size'][0]}x{p['image']['size'][1]} into {args.out}"


# -- cleaning ------------------------------------------------------------------------------------

@stage("embed", "one feature vector per image: data/features/<extractor>.npz", "specimen.clean.embed",
       arg("processed", type=Path, help="e.g. data/processed"),
       arg("out", type=Path, help="e.g. data/features/histogram.npz"))
def embed(p, args):
    from specimen.clean.embed import embed

    f = embed(args.processed, args.out, **p["embed"])  # extractor, batch_size, weights, clip_preset, input_size
    return f"{f.shape[0]} {p['embed']['extractor']} vectors of {f.shape[1]} floats into {args.out}"


@stage("clean", "remove duplicates, cross-split leaks, low-quality images and outliers: data/clean/ (index.csv, "
       "removed.csv, scores.csv, summary.json, galleries)", "specimen.clean.clean",
       arg("processed", type=Path, help="e.g. data/processed"),
       arg("features", type=Path, help="e.g. data/features/histogram.npz"),
       arg("out", type=Path, help="output folder, e.g. data/clean"))
def clean(p, args):
    from specimen.clean.clean import clean

    s = clean(args.processed, args.features, args.out, p["clean"], p["seed"])
    reasons = ", ".join(f"{k} {v}" for k, v in s["removed_by_reason"].items()) or "none"
    flagged = ", ".join(f"{k} {v}" for k, v in s["flagged_by_kind"].items()) or "none"
    return (f"{s['kept']} of {s['images']} images kept; removed: {reasons}; flagged: {flagged} "
            f"(see {args.out / 'removed.csv'}, {args.out / 'summary.json'}, {args.out / 'gallery'})")


@stage("balance", "training index (optionally oversampled) and class weights: data/clean/train.csv, "
       "class_weights.json", "specimen.clean.balance", arg("index", type=Path, help="e.g. data/clean/index.csv"),
       arg("out", type=Path, help="folder for train.csv and class_weights.json, e.g. data/clean"))
def balance(p, args):
    from specimen.clean.balance import balance

    r = balance(args.index, args.out, p["balance"], p["image"]["size"])
    added = sum(r["counts"].values()) - sum(r["counts_before_oversampling"].values())
    return (f"{len(r['weights'])} classes, {sum(r['counts'].values())} training rows ({added} oversampled copies), "
            f"weights {min(r['weights'].values()):.3g}..{max(r['weights'].values()):.3g}")


# -- models --------------------------------------------------------------------------------------

@stage("train", "train one model (head, then fine-tuning; resumes after a kill): results/models/<model>/",
       "specimen.train.train", *training("results/models/small_cnn"),
       arg("--work", type=Path, help="resumable state while training: backups, live TensorBoard and DVCLive logs "
           "(default: logs/train/<model>; `tensorboard --logdir logs/train` to watch)"))
def train(p, args):
    from specimen.train.train import train

    h = train(args.model, args.data, args.index, args.weights, args.classes, args.out, p["train"], p["seed"],
              train_path=args.train, work=args.work or Path("logs/train") / args.model)
    best = f"; best val_accuracy {h['val_accuracy'].max():.4f}" if "val_accuracy" in h else ""
    return f"{len(h)} epochs ({', '.join(f'{n} {k}' for k, n in h.phase.value_counts(sort=False).items())}){best}"


@stage("tune", "optional: Bayesian optimisation (KerasTuner) of one model's learning rate, head and unfrozen "
       "layers: results/tune/<model>/", "specimen.train.tune", *training("results/tune/small_cnn"),
       arg("--work", type=Path, help="the search's resumable state (default: logs/tune/<model>)"))
def tune(p, args):
    from specimen.train.tune import tune

    r = tune(args.model, args.data, args.index, args.weights, args.classes, args.out, p["train"], p["tune"], p["seed"],
             train_path=args.train, work=args.work or Path("logs/tune") / args.model)
    t, best, monitor = r["trials"], r["best"], r["monitor"]
    return (f"{(t.status == 'COMPLETED').sum()} of {len(t)} trials finished; best {monitor} {best[monitor]:.4f} "
            f"(trial {int(best['trial'])}); see {args.out / 'best_params.yaml'}")


# -- reports -------------------------------------------------------------------------------------

@stage("evaluate", "score one model on the test split: results/reports/<model>/", "specimen.report.evaluate",
       *model_and_data("results/reports/small_cnn"),
       arg("--curves", type=Path, help="a copy of the training history for DVC's curves plot, "
           "e.g. results/curves/small_cnn.csv"))
def evaluate(p, args):
    from specimen.report.evaluate import evaluate

    m = evaluate(args.model_dir, args.data, args.index, args.classes, args.out, settings=p["evaluate"],
                 seed=p["seed"], curves_csv=args.curves)
    top = "".join(f", top-{k.split('_')[1]} {v:.4f}" for k, v in m.items() if k.startswith("top_"))
    return (f"accuracy {m['accuracy']:.4f}, macro F1 {m['macro_f1']:.4f}{top} on {m['test_images']} test images "
            f"(calibration error {m['expected_calibration_error']:.3f})")


@stage("explain", "what one model looks at: Grad-CAM, feature maps and activation maximisation PNGs in "
       "results/explain/<model>/", "specimen.report.explain", *model_and_data("results/explain/small_cnn"))
def explain(p, args):
    from specimen.report.explain import explain

    s = explain(args.model_dir, args.data, args.index, args.classes, args.out, p["explain"], p["seed"])
    am = s["activation_max"]["classes"]
    return (f"Grad-CAM on {s['gradcam']['layer']} for {len(s['gradcam']['samples'])} test images, feature maps of "
            f"{', '.join(s['feature_maps']['layers'])}, {len(am)} classes maximised (mean probability "
            f"{sum(c['start_probability'] for c in am.values()) / len(am):.2f} -> "
            f"{sum(c['final_probability'] for c in am.values()) / len(am):.2f}) in {args.out}")


@stage("baselines", "scikit-learn baselines (logistic regression, MLP, linear SVM, random forest) on pixels and "
       "features: results/baselines/", "specimen.report.baselines", *DATA,
       arg("--features", type=Path, required=True, help="embed's vectors, e.g. data/features/histogram.npz"),
       arg("--out", type=Path, required=True, help="e.g. results/baselines"))
def baselines(p, args):
    from specimen.report.baselines import baselines

    s = baselines(args.data, args.index, args.classes, args.features, args.out, p["baselines"], p["seed"])
    table = s["summary"]
    if table.empty:
        return f"no baselines (baselines.models is empty): empty {args.out / 'summary.csv'}"
    best = table.loc[table.accuracy.idxmax()]
    used = (f"{s['train_images']} train images (a stratified subsample of {s['train_images_available']})"
            if s["train_images"] < s["train_images_available"] else f"{s['train_images']} train images")
    unconverged = f"; not converged: {', '.join(s['not_converged'])}" if s["not_converged"] else ""
    return (f"{len(table)} baselines on {used}, {s['test_images']} test images; best {best.model} on {best['input']}: "
            f"accuracy {best.accuracy:.4f}{unconverged} (see {args.out / 'summary.csv'})")


@stage("report", "compare the models (results/report/) and write the run's summary, results/all, last",
       "specimen.report.report",
       arg("--reports", type=Path, required=True, help="e.g. results/reports"),
       arg("--models", type=Path, required=True, help="e.g. results/models"),
       arg("--data", type=Path, required=True, help="e.g. data/processed"),
       arg("--clean", type=Path, required=True, help="e.g. data/clean"),
       arg("--raw", type=Path, required=True, help="e.g. data/raw"),
       arg("--out", type=Path, required=True, help="e.g. results/report"),
       arg("--summary", type=Path, required=True, help="e.g. results/all"),
       arg("--baselines", type=Path, help="the baselines' summary.csv, e.g. results/baselines/summary.csv"),
       arg("--explain", type=Path, help="explain's folders, e.g. results/explain"))
def report(p, args):
    from specimen.report.report import report

    s = report(p["train"]["models"], args.reports, args.models, args.data, args.clean, args.raw, args.out, args.summary,
               baselines=args.baselines, explain=args.explain)
    best = s["models"][s["best_model"]]
    return f"best model {s['best_model']}: accuracy {best['accuracy']:.4f}; summary in {args.summary}"


# -- tools ---------------------------------------------------------------------------------------

@stage("search", "the images of a folder or zip nearest to an image, by colour histogram (or clip/vgg16 "
       "features): a filename,distance table", "specimen.tools.search",
       arg("target", help="an image file, or a file name or path inside --data (e.g. roses/12.jpg)"),
       arg("--data", type=Path, required=True, help="a folder of images or a zip, e.g. data/extracted"),
       arg("-n", type=int, help="how many nearest images to list after the target (default: search.n)"),
       arg("--features", help="histogram, clip, vgg16 or another keras.applications backbone "
           "(default: search.features; networks use embed.weights, embed.input_size)"),
       arg("--out", type=Path, help="write the table to this CSV instead of printing it, e.g. results/search/12.jpg.csv"))
def search(p, args):
    from specimen.tools.search import search

    s = p["search"]
    r = search(args.target, args.data, args.out, s["n"] if args.n is None else args.n, args.features or s["features"],
               image=p["image"], embed=p["embed"])
    if args.out is None:
        print(r["table"].to_string(index=False, float_format=lambda v: f"{v:.6g}"))
    files = "file" if r["skipped"] == 1 else "files"
    skipped = f", {r['skipped']} other {files} skipped (not images OpenCV can read)" if r["skipped"] else ""
    where = f"; table in {args.out}" if args.out else ""
    return f"{len(r['table']) - 1} nearest of {r['images']} images in {args.data} to {r['target']}{skipped}{where}"


@stage("autoencoder", "optional: a denoising convolutional autoencoder of one class, its reconstructions and "
       "generated images: results/autoencoder/<class>/", "specimen.tools.autoencoder",
       *model_and_data("results/autoencoder/0 (the class in autoencoder.class)",
                       "the classifier that scores the generated images, e.g. results/models/small_cnn"))
def autoencoder(p, args):
    from specimen.tools.autoencoder import autoencoder

    m = autoencoder(args.model_dir, args.data, args.index, args.classes, args.out, p["autoencoder"], p["seed"])
    return (f"class {m['class']}: test MSE {m['reconstruction_mse']:.5f} denoised vs {m['noisy_mse']:.5f} noisy; "
            f"the classifier calls {m['generated_accuracy']:.1%} of {m['generated_images']} generated images "
            f"{m['class']} (see {args.out})")


@tool("predict", "the top-k classes of an image or a folder of images, preprocessed as the model's training data "
      "was", "specimen.tools.predict",
      arg("model", help="a model folder (holding model.keras and meta.json), or a name under results/models/"),
      arg("target", type=Path, metavar="IMAGE_OR_DIR", help="an image, or a folder searched recursively"),
      arg("--top-k", type=int, default=5, help="classes per image (default 5, at most the number of classes)"),
      arg("--out", type=Path, help="write the rows to this CSV instead of printing a table"),
      arg("--unsafe", action="store_true",
          help="load a model that holds Lambda layers (their Python code runs): only one you trust"))
def predict(p, args):
    from specimen.tools.predict import predict, table

    rows = predict(args.model, args.target, args.top_k, args.out, max_pixels=p["image"]["max_pixels"],
                   unsafe=args.unsafe)
    if args.out is None:
        print(table(rows))
    errors = int(rows.error.astype(bool).sum())
    where = f" into {args.out}" if args.out else ""
    return f"{len(rows) - errors} of {len(rows)} files predicted{where}; {errors} unreadable (see their error column)"


@tool("pull", "a teammate's pull: dvc pull (TARGETS with what they need, or everything), then mark it current for "
      "Snakemake", "specimen.dvcsync",
      arg("targets", nargs="*", help="DVC stages or outputs, e.g. train@small_cnn or results/models/small_cnn/model.keras "
          "(pulled with every stage they depend on); none: everything"),
      arg("-r", "--remote", help="the DVC remote to pull from (default: the one .dvc/config names)"))
def pull(p, args):
    from specimen.dvcsync import pull

    r = pull(Path.cwd(), args.targets, args.remote)
    stale = f"; differ from dvc.lock, left as they are: {', '.join(r['stale'])}" if r["stale"] else ""
    return (f"{r['fetched']} files fetched; {len(r['current'])} stages current for Snakemake{stale}"
            + (f"; not pulled: {', '.join(r['missing'])}" if r["missing"] else ""))


@tool("dvc-commit", "make dvc.lock say what Snakemake knows: record what it calls current, forget what it would run "
      "(Snakemake runs this when a run ends)", "specimen.dvcsync")
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


@tool("params", "params.yaml with the schema's defaults filled in; --fill writes in the keys it leaves out",
      "specimen.params",
      arg("--fill", action="store_true", help="write every key the file leaves to the schema's defaults into it, "
          "with its default, keeping its comments (DVC reads the file as written, so every key must be there)"))
def params(p, args):
    from specimen.params import fill

    if args.fill:
        written = fill(args.params)
        return (f"wrote {len(written)} keys into {args.params}: {', '.join(written)}" if written
                else f"{args.params} already writes out every key")
    import yaml

    print(yaml.safe_dump(p, sort_keys=False), end="")
