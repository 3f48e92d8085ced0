"""The one command line: ``specimen <stage> ...``. Snakemake rules and DVC stages call exactly these.

Every stage validates params.yaml first; an error the user can fix is one line on stderr and exit
status 2, never a traceback.
"""
from __future__ import annotations

import argparse
import errno
import os
import sys
from pathlib import Path

from specimen import SpecimenError, __version__

STAGES = {}
DAG_STAGES = set()  # the stages Snakemake and DVC run (the others are tools)


def stage(name: str, help: str, dag: bool = True):
    """Register a handler: `setup(parser)` adds its arguments, the function runs it."""
    def register(func):
        STAGES[name] = (help, func)
        if dag:
            DAG_STAGES.add(name)
        return func
    return register


def _module_doc(module: str) -> str:
    import importlib.util
    import ast

    spec = importlib.util.find_spec(f"specimen.{module}")
    return ast.get_docstring(ast.parse(Path(spec.origin).read_text())) or ""


@stage("download", "put the dataset's archive in data/raw/ (demo, local:PATH, kaggle:OWNER/SLUG, url:URL#sha256=...)")
def _download(p, args=None):
    if args is None:
        p.add_argument("out", type=Path, help="output folder, e.g. data/raw")
        return
    from specimen.download import download
    from specimen.localsource import update_link
    meta = download(p["dataset"]["source"], args.out, p["dataset"]["version"])
    project = os.environ.get("DVC_ROOT") or os.environ.get("SPECIMEN_PROJECT")  # run by DVC or Snakemake
    if project:
        update_link(p["dataset"]["source"], Path(project))  # what DVC hashes of a local: dataset
    return f"{meta['archive']} ({meta['bytes']} bytes, sha256 {meta['sha256'][:12]}...)"


@stage("extract", "unpack data/raw/<archive> into data/extracted/<name>/, refusing hostile entries")
def _extract(p, args=None):
    if args is None:
        p.add_argument("raw", type=Path, help="the download folder, e.g. data/raw")
        p.add_argument("out", type=Path, help="output folder, e.g. data/extracted")
        return
    from specimen.extract import extract
    e = p["extract"]  # defaults filled in by the params schema
    r = extract(args.raw, args.out, e["max_total_mb"], e["max_ratio"], e["max_files"])
    skipped = f" ({r['skipped']} macOS/dotfile entries skipped)" if r["skipped"] else ""
    return f"{r['files']} files into {r['target']}{skipped}"


@stage("ingest", "account for every file: data/interim/manifest.csv and classes.json")
def _ingest(p, args=None):
    if args is None:
        p.add_argument("extracted", type=Path, help="the extracted folder, e.g. data/extracted")
        p.add_argument("out", type=Path, help="output folder for manifest.csv and classes.json, e.g. data/interim")
        return
    from specimen.ingest import ingest
    m = ingest(args.extracted, args.out, p["dataset"]["split"], p["seed"],
               labels_file=p["dataset"]["labels_file"], columns=p["dataset"]["columns"],
               merge_train_valid=p["dataset"]["merge_train_valid"], max_pixels=p["image"]["max_pixels"])
    ok = m[m.status == "ok"]
    return f"{len(m)} files: {len(ok)} images in {ok.label.nunique()} classes, {len(m) - len(ok)} rejected"


@stage("preprocess", "decode, EXIF-rotate, resize + pad to image.size; shards + index in data/processed/")
def _preprocess(p, args=None):
    if args is None:
        p.add_argument("manifest", type=Path, help="e.g. data/interim/manifest.csv")
        p.add_argument("extracted", type=Path, help="the folder the manifest's paths are relative to, e.g. data/extracted")
        p.add_argument("out", type=Path, help="output folder, e.g. data/processed")
        return
    from specimen.preprocess import preprocess
    kept = preprocess(args.manifest, args.extracted, args.out, p["image"], p["preprocess"]["shard_size"])
    return f"{kept} images of {p['image']['size'][0]}x{p['image']['size'][1]} into {args.out}"


@stage("embed", "one feature vector per image: data/features/<extractor>.npz")
def _embed(p, args=None):
    if args is None:
        p.add_argument("processed", type=Path, help="e.g. data/processed")
        p.add_argument("out", type=Path, help="e.g. data/features/histogram.npz")
        return
    from specimen.embed import embed
    f = embed(args.processed, args.out, **p["embed"])  # extractor, batch_size, weights, clip_preset, input_size
    return f"{f.shape[0]} {p['embed']['extractor']} vectors of {f.shape[1]} floats into {args.out}"


@stage("clean", "remove duplicates, cross-split leaks, low-quality images and outliers: data/clean/ (index.csv, removed.csv, scores.csv, summary.json, galleries)")
def _clean(p, args=None):
    if args is None:
        p.add_argument("processed", type=Path, help="e.g. data/processed")
        p.add_argument("features", type=Path, help="e.g. data/features/histogram.npz")
        p.add_argument("out", type=Path, help="output folder, e.g. data/clean")
        return
    from specimen.clean import clean
    s = clean(args.processed, args.features, args.out, p["clean"], p["seed"])
    reasons = ", ".join(f"{k} {v}" for k, v in s["removed_by_reason"].items()) or "none"
    flagged = ", ".join(f"{k} {v}" for k, v in s["flagged_by_kind"].items()) or "none"
    return (f"{s['kept']} of {s['images']} images kept; removed: {reasons}; flagged: {flagged} "
            f"(see {args.out / 'removed.csv'}, {args.out / 'summary.json'}, {args.out / 'gallery'})")


@stage("balance", "training index (optionally oversampled) and class weights: data/clean/train.csv, class_weights.json")
def _balance(p, args=None):
    if args is None:
        p.add_argument("index", type=Path, help="e.g. data/clean/index.csv")
        p.add_argument("out", type=Path, help="folder for train.csv and class_weights.json, e.g. data/clean")
        return
    from specimen.balance import balance
    r = balance(args.index, args.out, p["balance"], p["image"]["size"])
    added = sum(r["counts"].values()) - sum(r["counts_before_oversampling"].values())
    return (f"{len(r['weights'])} classes, {sum(r['counts'].values())} training rows ({added} oversampled copies), "
            f"weights {min(r['weights'].values()):.3g}..{max(r['weights'].values()):.3g}")


def _data_args(p):
    p.add_argument("--data", type=Path, required=True, help="processed images, e.g. data/processed")
    p.add_argument("--index", type=Path, required=True, help="the clean index, e.g. data/clean/index.csv")
    p.add_argument("--classes", type=Path, required=True, help="e.g. data/interim/classes.json")


def _model_data_args(p, out_example: str, model_help: str = "e.g. results/models/small_cnn"):
    """What evaluate, explain and autoencoder read: a trained model's folder and the data; and where to write."""
    p.add_argument("model_dir", type=Path, help=model_help)
    _data_args(p)
    p.add_argument("--out", type=Path, required=True, help=f"e.g. {out_example}")


def _training_args(p, out_example: str):
    """What train and tune both read: the model's name, the data, balance's rows and weights."""
    p.add_argument("model", help="a name from train.models, e.g. small_cnn")
    _data_args(p)
    p.add_argument("--train", type=Path, required=True, help="balance's training index, e.g. data/clean/train.csv")
    p.add_argument("--weights", type=Path, required=True, help="e.g. data/clean/class_weights.json")
    p.add_argument("--out", type=Path, required=True, help=f"e.g. {out_example}")


@stage("train", "train one model (head, then fine-tuning; resumes after a kill): results/models/<model>/")
def _train(p, args=None):
    if args is None:
        _training_args(p, "results/models/small_cnn")
        p.add_argument("--work", type=Path, help="resumable state while training: backups, live TensorBoard and "
                       "DVCLive logs (default: logs/train/<model>; `tensorboard --logdir logs/train` to watch)")
        return
    from specimen.train import train
    h = train(args.model, args.data, args.index, args.weights, args.classes, args.out, p["train"], p["seed"],
              train_path=args.train, work=args.work or Path("logs/train") / args.model)
    best = f"; best val_accuracy {h['val_accuracy'].max():.4f}" if "val_accuracy" in h else ""
    return f"{len(h)} epochs ({', '.join(f'{n} {k}' for k, n in h.phase.value_counts(sort=False).items())}){best}"


@stage("evaluate", "score one model on the test split: results/reports/<model>/")
def _evaluate(p, args=None):
    if args is None:
        _model_data_args(p, "results/reports/small_cnn")
        p.add_argument("--curves", type=Path, help="a copy of the training history for DVC's curves plot, "
                       "e.g. results/curves/small_cnn.csv")
        return
    from specimen.evaluate import evaluate
    m = evaluate(args.model_dir, args.data, args.index, args.classes, args.out, settings=p["evaluate"],
                 seed=p["seed"], curves_csv=args.curves)
    top = "".join(f", top-{k.split('_')[1]} {v:.4f}" for k, v in m.items() if k.startswith("top_"))
    return (f"accuracy {m['accuracy']:.4f}, macro F1 {m['macro_f1']:.4f}{top} on {m['test_images']} test images "
            f"(calibration error {m['expected_calibration_error']:.3f})")


@stage("explain", "what one model looks at: Grad-CAM, feature maps and activation maximisation PNGs in results/explain/<model>/")
def _explain(p, args=None):
    if args is None:
        _model_data_args(p, "results/explain/small_cnn")
        return
    from specimen.explain import explain
    s = explain(args.model_dir, args.data, args.index, args.classes, args.out, p["explain"], p["seed"])
    am = s["activation_max"]["classes"]
    return (f"Grad-CAM on {s['gradcam']['layer']} for {len(s['gradcam']['samples'])} test images, feature maps of "
            f"{', '.join(s['feature_maps']['layers'])}, {len(am)} classes maximised (mean probability "
            f"{sum(c['start_probability'] for c in am.values()) / len(am):.2f} -> "
            f"{sum(c['final_probability'] for c in am.values()) / len(am):.2f}) in {args.out}")


@stage("baselines", "scikit-learn baselines (logistic regression, MLP, linear SVM, random forest) on pixels and features: results/baselines/")
def _baselines(p, args=None):
    if args is None:
        _data_args(p)
        p.add_argument("--features", type=Path, required=True, help="embed's vectors, e.g. data/features/histogram.npz")
        p.add_argument("--out", type=Path, required=True, help="e.g. results/baselines")
        return
    from specimen.baselines import baselines
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


@stage("report", "compare the models (results/report/) and write the run's summary, results/all, last")
def _report(p, args=None):
    if args is None:
        p.add_argument("--reports", type=Path, required=True, help="e.g. results/reports")
        p.add_argument("--models", type=Path, required=True, help="e.g. results/models")
        p.add_argument("--data", type=Path, required=True, help="e.g. data/processed")
        p.add_argument("--clean", type=Path, required=True, help="e.g. data/clean")
        p.add_argument("--raw", type=Path, required=True, help="e.g. data/raw")
        p.add_argument("--out", type=Path, required=True, help="e.g. results/report")
        p.add_argument("--summary", type=Path, required=True, help="e.g. results/all")
        p.add_argument("--baselines", type=Path, help="the baselines' summary.csv, e.g. results/baselines/summary.csv")
        p.add_argument("--explain", type=Path, help="explain's folders, e.g. results/explain")
        return
    from specimen.report import report
    s = report(p["train"]["models"], args.reports, args.models, args.data, args.clean, args.raw, args.out, args.summary,
               baselines=args.baselines, explain=args.explain)
    best = s["models"][s["best_model"]]
    return f"best model {s['best_model']}: accuracy {best['accuracy']:.4f}; summary in {args.summary}"


@stage("tune", "optional: Bayesian optimisation (KerasTuner) of one model's learning rate, head and unfrozen layers: results/tune/<model>/")
def _tune(p, args=None):
    if args is None:
        _training_args(p, "results/tune/small_cnn")
        p.add_argument("--work", type=Path, help="the search's resumable state (default: logs/tune/<model>)")
        return
    from specimen.tune import tune
    r = tune(args.model, args.data, args.index, args.weights, args.classes, args.out, p["train"], p["tune"], p["seed"],
             train_path=args.train, work=args.work or Path("logs/tune") / args.model)
    t, best, monitor = r["trials"], r["best"], r["monitor"]
    return (f"{(t.status == 'COMPLETED').sum()} of {len(t)} trials finished; best {monitor} {best[monitor]:.4f} "
            f"(trial {int(best['trial'])}); see {args.out / 'best_params.yaml'}")


@stage("predict", "tool: the top-k classes of an image or a folder of images, preprocessed as the model's training data was", dag=False)
def _predict(p, args=None):
    if args is None:
        p.add_argument("model", help="a model folder (holding model.keras and meta.json), or a name under results/models/")
        p.add_argument("target", type=Path, metavar="IMAGE_OR_DIR", help="an image, or a folder searched recursively")
        p.add_argument("--top-k", type=int, default=5, help="classes per image (default 5, at most the number of classes)")
        p.add_argument("--out", type=Path, help="write the rows to this CSV instead of printing a table")
        p.add_argument("--unsafe", action="store_true",
                       help="load a model that holds Lambda layers (their Python code runs): only one you trust")
        return
    from specimen.predict import predict, table
    rows = predict(args.model, args.target, args.top_k, args.out, max_pixels=p["image"]["max_pixels"],
                   unsafe=args.unsafe)
    if args.out is None:
        print(table(rows))
    errors = int(rows.error.astype(bool).sum())
    where = f" into {args.out}" if args.out else ""
    return f"{len(rows) - errors} of {len(rows)} files predicted{where}; {errors} unreadable (see their error column)"


@stage("autoencoder", "optional: a denoising convolutional autoencoder of one class, its reconstructions and generated images: results/autoencoder/<class>/")
def _autoencoder(p, args=None):
    if args is None:
        _model_data_args(p, "results/autoencoder/0 (the class in autoencoder.class)",
                         "the classifier that scores the generated images, e.g. results/models/small_cnn")
        return
    from specimen.autoencoder import autoencoder
    m = autoencoder(args.model_dir, args.data, args.index, args.classes, args.out, p["autoencoder"], p["seed"])
    return (f"class {m['class']}: test MSE {m['reconstruction_mse']:.5f} denoised vs {m['noisy_mse']:.5f} noisy; "
            f"the classifier calls {m['generated_accuracy']:.1%} of {m['generated_images']} generated images "
            f"{m['class']} (see {args.out})")


@stage("search", "tool: the images of a folder or zip nearest to an image, by colour histogram (or clip/vgg16 features): a filename,distance table")
def _search(p, args=None):
    if args is None:
        p.add_argument("target", help="an image file, or a file name or path inside --data (e.g. roses/12.jpg)")
        p.add_argument("--data", type=Path, required=True, help="a folder of images or a zip, e.g. data/extracted")
        p.add_argument("-n", type=int, help="how many nearest images to list after the target (default: search.n)")
        p.add_argument("--features", help="histogram, clip, vgg16 or another keras.applications backbone "
                       "(default: search.features; networks use embed.weights, embed.input_size)")
        p.add_argument("--out", type=Path, help="write the table to this CSV instead of printing it, "
                       "e.g. results/search/12.jpg.csv")
        return
    from specimen.search import search
    s = p["search"]
    r = search(args.target, args.data, args.out, s["n"] if args.n is None else args.n, args.features or s["features"],
               image=p["image"], embed=p["embed"])
    if args.out is None:
        print(r["table"].to_string(index=False, float_format=lambda v: f"{v:.6g}"))
    files = "file" if r["skipped"] == 1 else "files"
    skipped = f", {r['skipped']} other {files} skipped (not images OpenCV can read)" if r["skipped"] else ""
    where = f"; table in {args.out}" if args.out else ""
    return f"{len(r['table']) - 1} nearest of {r['images']} images in {args.data} to {r['target']}{skipped}{where}"


@stage("pull", "a teammate's pull: dvc pull (TARGETS with what they need, or everything), then mark it current for Snakemake", dag=False)
def _pull(p, args=None):
    if args is None:
        p.add_argument("targets", nargs="*", help="DVC stages or outputs, e.g. train@small_cnn or results/models/small_cnn/model.keras "
                       "(pulled with every stage they depend on); none: everything")
        p.add_argument("-r", "--remote", help="the DVC remote to pull from (default: the one .dvc/config names)")
        return
    from specimen.dvcsync import pull
    r = pull(Path.cwd(), args.targets, args.remote)
    stale = f"; differ from dvc.lock, left as they are: {', '.join(r['stale'])}" if r["stale"] else ""
    return (f"{r['fetched']} files fetched; {len(r['current'])} stages current for Snakemake{stale}"
            + (f"; not pulled: {', '.join(r['missing'])}" if r["missing"] else ""))


@stage("dvc-commit", "make dvc.lock say what Snakemake knows: record what it calls current, forget what it would run (Snakemake runs this when a run ends)", dag=False)
def _dvc_commit(p, args=None):
    if args is None:
        return
    from specimen.dvcsync import commit_finished
    r = commit_finished(Path.cwd())
    said = [f"recorded {len(r['committed'])} DVC stages"]
    if r["out_of_date"]:
        forgotten = f" (their records removed: {', '.join(r['forgotten'])})" if r["forgotten"] else ""
        said.append(f"out of date, to run again: {', '.join(r['out_of_date'])}{forgotten}")
    if r["not_run"]:
        said.append(f"not yet run: {', '.join(r['not_run'])}")
    return "; ".join(said)


@stage("params", "tool: params.yaml with the schema's defaults filled in; --fill writes in the keys it leaves out", dag=False)
def _params(p, args=None):
    if args is None:
        p.add_argument("--fill", action="store_true",
                       help="write every key the file leaves to the schema's defaults into it, with its default, "
                            "keeping its comments (DVC reads the file as written, so every key must be there)")
        return
    from specimen.params import fill
    if args.fill:
        written = fill(args.params)
        return f"wrote {len(written)} keys into {args.params}: {', '.join(written)}" if written else (
            f"{args.params} already writes out every key")
    import yaml
    print(yaml.safe_dump(p, sort_keys=False), end="")


def parser() -> argparse.ArgumentParser:
    top = argparse.ArgumentParser(
        prog="specimen",
        description="A reproducible image-classification pipeline. Each stage below is one step of the "
                    "DAG that `snakemake results/all` and `dvc repro` run; `specimen STAGE --help` tells "
                    "what it reads and writes.",
        formatter_class=argparse.RawDescriptionHelpFormatter)
    top.add_argument("--version", action="version", version=f"specimen {__version__}")
    subs = top.add_subparsers(dest="stage", metavar="STAGE", required=True)
    for name, (help, func) in STAGES.items():
        module = {"dvc-commit": "dvcsync", "pull": "dvcsync"}.get(name, name)
        sub = subs.add_parser(name, help=help, description=_module_doc(module) or help,
                              formatter_class=argparse.RawDescriptionHelpFormatter)
        sub.add_argument("--params", type=Path, default=Path(os.environ.get("SPECIMEN_PARAMS", "params.yaml")),
                         help="the params file (default: $SPECIMEN_PARAMS, which Snakemake sets to the config it "
                              "runs with, else params.yaml)")
        func(sub)
        sub.set_defaults(func=func)
    return top


# A full disk or quota is the user's to fix, not a bug: one line, like a SpecimenError. Every
# artefact is written beside its final name and moved in place (specimen.files), so what the
# failed write began is already gone when this is printed.
FULL_DISK = {errno.ENOSPC, errno.EDQUOT, errno.EFBIG}


def main(argv=None) -> int:
    args = parser().parse_args(argv)
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    try:
        from specimen import params as params_mod

        p = params_mod.load(args.params)
        if args.stage in DAG_STAGES and not os.environ.get("SPECIMEN_PARAMS") and args.params == Path("params.yaml"):
            params_mod.check_complete(args.params)  # as DVC runs it: dvc.lock records params.yaml as written
        message = args.func(p, args)
    except SpecimenError as e:
        print(f"specimen {args.stage}: error: {e}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print(f"specimen {args.stage}: interrupted", file=sys.stderr)
        return 130
    except OSError as e:
        if e.errno not in FULL_DISK:
            raise
        target = e.filename or getattr(args, "out", None)  # a write() error names no file: the stage's output
        where = f" writing {target}" if target else ""
        print(f"specimen {args.stage}: error: {os.strerror(e.errno).lower()}{where}: nothing was kept; free some space "
              "(or move the project to a larger disk) and run it again", file=sys.stderr)
        return 2
    if message:
        print(f"specimen {args.stage}: {message}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
