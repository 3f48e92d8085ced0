"""Benchmark: embed's images/s over shards against the same network run by Keras' own compiled predict
on one in-memory batch, already preprocessed (the ceiling: no reading, no conversion, no per-call
overhead), measured in one run.

    python bench/embed.py [--extractor mobilenetv2] [--side 96] [--images 2048] [--batch 64]
    python bench/embed.py --extractor vgg16 --side 224          # the README's default, on a GPU

Random weights (`weights: none`): nothing to download. "stage" is embed's own loop: `Shards.batches`
over memory-mapped shards written here, then `specimen.clean.features.network`'s features function, the one
`specimen embed` calls per batch. "ceiling" is the same keras.applications network, built the same
way, through `predict_on_batch` on one batch that went through its `preprocess_input` once. Rounds
alternate between the two (the
first of each is dropped: tracing); each rate is from its fastest round, medians beside. Prints
images/s of both and their ratio (goal >= 0.9: embed is bound by the network, not by its input).
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "src"))
sys.path.insert(0, str(Path(__file__).resolve().parent))
from input_pipeline import make_shards  # noqa: E402


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument(
        "--extractor", default="mobilenetv2", help="a keras.applications extractor of embed (random weights)"
    )
    ap.add_argument("--side", type=int, default=96)
    ap.add_argument("--images", type=int, default=2048)
    ap.add_argument("--batch", type=int, default=64, help="embed.batch_size")
    ap.add_argument("--rounds", type=int, default=4, help="measured rounds per feed (after one warm-up each)")
    args = ap.parse_args()

    import keras

    from specimen.backbones import BACKBONES
    from specimen.clean.features import network
    from specimen.shards import Shards

    features, dim = network(args.extractor, (args.side, args.side), weights="none")
    module, constructor = BACKBONES[args.extractor]
    model = getattr(keras.applications, constructor)(
        include_top=False, pooling="avg", weights=None, input_shape=(args.side, args.side, 3)
    )
    with tempfile.TemporaryDirectory() as tmp:
        index = make_shards(Path(tmp), args.images, args.side)
        shards = Shards(Path(tmp) / "shards")
        batch = np.random.default_rng(1).integers(0, 256, (args.batch, args.side, args.side, 3)).astype(np.float32)
        batch = getattr(keras.applications, module).preprocess_input(batch)

        def stage() -> float:
            start = time.perf_counter()
            for r, images in shards.batches(index, args.batch):
                features(r, images)
            return time.perf_counter() - start

        def ceiling() -> float:
            start = time.perf_counter()
            for _ in range(-(-args.images // args.batch)):
                model.predict_on_batch(batch)
            return time.perf_counter() - start

        times = {"stage": [], "ceiling": []}
        feeds = (("stage", stage), ("ceiling", ceiling))
        for _, run in feeds:
            run()  # warm-up: tracing, caches
        for _ in range(args.rounds):
            for feed, run in feeds:
                times[feed].append(run())

    import tensorflow as tf

    device = "GPU" if tf.config.list_physical_devices("GPU") else "CPU"
    print(
        f"embed {args.extractor} at {args.side}x{args.side} ({dim} features), batch {args.batch}, "
        f"{args.images} images, {device}"
    )
    rate, median = {}, {}
    for feed in ("stage", "ceiling"):
        rate[feed], median[feed] = args.images / min(times[feed]), args.images / statistics.median(times[feed])
        print(
            f"  {feed:8s}: {rate[feed]:8.1f} images/s  (median {median[feed]:.1f}; rounds "
            f"{', '.join(f'{t:.2f}' for t in times[feed])} s)"
        )
    print(
        f"ratio stage/ceiling: {rate['stage'] / rate['ceiling']:.3f} (goal >= 0.9); "
        f"of the medians: {median['stage'] / median['ceiling']:.3f}"
    )


if __name__ == "__main__":
    main()
