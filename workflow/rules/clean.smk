# Cleaning: embed -> clean -> balance.


rule embed:
    input:
        processed="data/processed",
        code=code("embed", "shards"),
        # embed.weights given as a file: its content is an input too
        weights=[] if config["embed"]["weights"] in ("imagenet", "none") else [config["embed"]["weights"]],
    output:
        FEATURES,
    params:
        embed=config["embed"],
    threads: 2
    resources:
        mem_mb=4000,
    log:
        "logs/embed.log",
    benchmark:
        "logs/benchmarks/embed.tsv"
    conda:
        CONDA_ENV
    shell:
        "specimen embed {input.processed} {output} > {log} 2>&1"


rule clean:
    input:
        processed="data/processed",
        features=FEATURES,
        code=code("clean", "shards"),
    output:
        index="data/clean/index.csv",
        removed="data/clean/removed.csv",
        scores="data/clean/scores.csv",
        summary="data/clean/summary.json",
        counts="data/clean/class_counts.png",
        gallery=directory("data/clean/gallery"),
    params:
        clean=config["clean"],
        seed=config["seed"],
    log:
        "logs/clean.log",
    benchmark:
        "logs/benchmarks/clean.tsv"
    conda:
        CONDA_ENV
    shell:
        "specimen clean {input.processed} {input.features} data/clean > {log} 2>&1"


rule balance:
    input:
        index="data/clean/index.csv",
        code=code("balance"),
    output:
        train="data/clean/train.csv",
        weights="data/clean/class_weights.json",
    params:
        balance=config["balance"],
        size=config["image"]["size"],
    log:
        "logs/balance.log",
    benchmark:
        "logs/benchmarks/balance.tsv"
    conda:
        CONDA_ENV
    shell:
        "specimen balance {input.index} data/clean > {log} 2>&1"
