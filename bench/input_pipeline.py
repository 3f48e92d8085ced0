"""Benchmark: training steps/s through specimen's input pipeline against the same model fed
in-memory synthetic tensors (the ceiling: no input cost at all), measured in one run.

    python bench/input_pipeline.py [--images 4096] [--side 96] [--model small_cnn] [--batch 32]
    python bench/input_pipeline.py --model resnet50 --side 224 --mixed-precision on   # on a GPU
    python bench/input_pipeline.py --mixed-precision auto --jit-compile on             # XLA on / off

The real pipeline is `specimen.train.inputs.dataset` over memory-mapped shards written here (seeded
shuffle, batches gathered in parallel, one-hot labels, prefetch; MixUp/CutMix with ``--mix``),
exactly what `specimen train` fits on, and the model is compiled by train's own
`compile_phase` (params.yaml's recipe: AdamW, the cosine schedule, label smoothing). The
synthetic feed is one batch of the same shape held as a tensor and repeated. Epochs alternate
between the two feeds (the first of each is dropped: tracing). Each feed's rate is from its
fastest epoch (on a shared machine, noise only ever adds time; the same model's epoch was seen to
take 5 to 10 s here), the medians are printed beside. Prints steps/s and images/s of both, their
ratio (goal >= 0.9), and the pipeline's own rate without a model (how far the input is from
being the bottleneck).
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import pandas as pd

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "src"))
from specimen.shards import shard_name, write_shard  # noqa: E402


def make_shards(folder: Path, n: int, side: int, shard_size: int = 1024) -> pd.DataFrame:
    """n random uint8 images in shards, and index rows as preprocess writes them."""
    rng = np.random.default_rng(0)
    (folder / "shards").mkdir(parents=True)
    rows = []
    for number, start in enumerate(range(0, n, shard_size)):
        count = min(shard_size, n - start)
        pixels = rng.integers(0, 256, (count, side, side, 3), dtype=np.uint8)
        write_shard(folder / "shards" / shard_name(number), pixels, list(range(count)))
        rows += [
            {
                "id": f"img{start + k:06d}",
                "shard": shard_name(number),
                "offset": k,
                "label": f"c{(start + k) % 10}",
                "split": "train",
            }
            for k in range(count)
        ]
    return pd.DataFrame(rows)


def epoch_seconds(model, feed, steps: int) -> float:
    start = time.perf_counter()
    model.fit(feed, epochs=1, steps_per_epoch=steps, verbose=0, shuffle=False)
    return time.perf_counter() - start


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--images", type=int, default=4096)
    ap.add_argument("--side", type=int, default=96)
    ap.add_argument("--model", default="small_cnn", help="a train.models name (random weights)")
    ap.add_argument("--batch", type=int, default=32)
    ap.add_argument("--epochs", type=int, default=6, help="measured epochs per feed (after one warm-up each)")
    ap.add_argument("--mixed-precision", default="auto", choices=["auto", "on", "off"])
    ap.add_argument("--jit-compile", default="auto", choices=["auto", "on", "off"], help="XLA (train.jit_compile)")
    ap.add_argument("--mix", action="store_true", help="MixUp 0.2 and CutMix 1.0 on the real feed's batches")
    args = ap.parse_args()

    import tensorflow as tf
    import yaml

    from specimen.train.inputs import dataset, mixed
    from specimen.train.models import build
    from specimen.train.setup import Phase, compile_phase, distribution, precision, seed_everything

    seed_everything(0, deterministic=False)
    policy = precision(args.mixed_precision)
    classes = [f"c{i}" for i in range(10)]
    with tempfile.TemporaryDirectory() as tmp:
        rows = make_shards(Path(tmp), args.images, args.side)
        steps = args.images // args.batch
        params = yaml.safe_load((Path(__file__).resolve().parents[1] / "params.yaml").read_text())["train"]
        params.update(weights="none", jit_compile=args.jit_compile)
        params["augment"].update({"mixup": 0.2, "cutmix": 1.0} if args.mix else {})
        real = dataset(rows, Path(tmp), classes, args.batch, shuffle=True, seed=0, one_hot=True)
        real = mixed(real, params["augment"], 0).repeat()
        x = tf.constant(
            np.random.default_rng(1).integers(0, 256, (args.batch, args.side, args.side, 3), dtype=np.uint8)
        )
        y = tf.one_hot(np.arange(args.batch) % 10, 10)
        synthetic = tf.data.Dataset.from_tensors((x, y)).repeat()

        start, seen = time.perf_counter(), 0
        for _ in real.take(steps):  # the pipeline alone, no model
            seen += 1
        alone = seen / (time.perf_counter() - start)

        with distribution().scope():
            model = build(args.model, (args.side, args.side, 3), 10, params, 0)
            compile_phase(model, Phase("train", 2 + 2 * args.epochs, params["learning_rate"]), params, steps)
        times = {"real": [], "synthetic": []}
        feeds = (("real", real), ("synthetic", synthetic))
        for _feed, ds in feeds:
            epoch_seconds(model, ds, steps)  # warm-up: tracing, caches
        for _ in range(args.epochs):
            for feed, ds in feeds:
                times[feed].append(epoch_seconds(model, ds, steps))

    device = "GPU" if tf.config.list_physical_devices("GPU") else "CPU"
    print(
        f"{args.model} at {args.side}x{args.side}, batch {args.batch}, {steps} steps/epoch, {device}, {policy}, "
        f"jit_compile {args.jit_compile}{', MixUp + CutMix' if args.mix else ''}"
    )
    rate, median = {}, {}
    for feed in ("real", "synthetic"):
        rate[feed], median[feed] = steps / min(times[feed]), steps / statistics.median(times[feed])
        print(
            f"  {feed:9s}: {rate[feed]:7.2f} steps/s  {rate[feed] * args.batch:8.1f} images/s"
            f"  (median {median[feed]:.2f} steps/s; epochs {', '.join(f'{t:.2f}' for t in times[feed])} s)"
        )
    print(
        f"  pipeline alone: {alone:.1f} steps/s ({alone * args.batch:.0f} images/s), "
        f"{alone / rate['synthetic']:.1f}x what the model consumes"
    )
    print(
        f"ratio real/synthetic: {rate['real'] / rate['synthetic']:.3f} (goal >= 0.9); "
        f"of the medians: {median['real'] / median['synthetic']:.3f}"
    )


if __name__ == "__main__":
    main()
