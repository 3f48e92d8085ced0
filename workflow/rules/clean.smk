# Cleaning: embed -> clean -> balance.


rule embed:
    input:
        processed="data/processed",
        code=code("embed"),
        # embed.weights given as a file: its content is an input too
        weights=[] if config["embed"]["weights"] in ("imagenet", "none") else [config["embed"]["weights"]],
    output:
        FEATURES,
    log:
        "logs/embed.log",
    benchmark:
        "logs/benchmarks/embed.tsv"
    conda:
        CONDA_ENV
    threads: 2
    # measured at 100,000 images (bench/scale.py): 0.2 GB and 8 s with histograms; a CNN on two CPU
    # cores embeds a few hundred images a second (bench/embed.py), CLIP fewer
    resources:
        mem_mb=4000,
        runtime=240,
    params:
        tracked=tracked("embed"),  # the params its DVC stage lists
    shell:
        "specimen embed {input.processed} {output} > {log} 2>&1"


rule clean:
    input:
        processed="data/processed",
        features=FEATURES,
        code=code("clean"),
    output:
        index="data/clean/index.csv",
        removed=report(
            "data/clean/removed.csv",
            caption="../report/removed.rst",
            category="Data",
            labels={"table": "removed images"},
        ),
        scores="data/clean/scores.csv",
        label_issues=report(
            "data/clean/label_issues.csv",
            caption="../report/label_issues.rst",
            category="Data",
            labels={"table": "label issues"},
        ),
        summary="data/clean/summary.json",
        counts=report(
            "data/clean/class_counts.png",
            caption="../report/class_counts.rst",
            category="Data",
            labels={"figure": "images per class"},
        ),
        gallery=report(
            directory("data/clean/gallery"),
            patterns=["{name}.png"],
            caption="../report/removed_gallery.rst",
            category="Data",
            labels={"figure": "gallery: {name}"},
        ),
    log:
        "logs/clean.log",
    benchmark:
        "logs/benchmarks/clean.tsv"
    conda:
        CONDA_ENV
    # measured (bench/scale.py, 128 px, histogram features, 2 threads): 0.5 GB and 14 s at 10,000
    # images, 1.2 to 1.6 GB and about 2 minutes at 100,000; memory grows with the N x 512 features
    threads: 2  # the image properties' workers
    resources:
        mem_mb=4000,
        runtime=60,
    params:
        tracked=tracked("clean"),  # the params its DVC stage lists
    shell:
        "specimen clean {input.processed} {input.features} data/clean > {log} 2>&1"


rule balance:
    input:
        index="data/clean/index.csv",
        code=code("balance"),
    output:
        train="data/clean/train.csv",
        weights="data/clean/class_weights.json",
    log:
        "logs/balance.log",
    benchmark:
        "logs/benchmarks/balance.tsv"
    conda:
        CONDA_ENV
    # measured at 100,000 images (bench/scale.py): 0.2 GB and 2 s
    resources:
        mem_mb=1000,
        runtime=30,
    params:
        tracked=tracked("balance"),  # the params its DVC stage lists
    shell:
        "specimen balance {input.index} data/clean > {log} 2>&1"
