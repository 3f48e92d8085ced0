# Data in: download -> extract -> ingest -> preprocess.


rule download:
    input:
        code=code("download", "demo"),
    output:
        directory("data/raw"),
    params:
        source=config["dataset"]["source"],
        version=config["dataset"]["version"],
    log:
        "logs/download.log",
    benchmark:
        "logs/benchmarks/download.tsv"
    conda:
        CONDA_ENV
    shell:
        "specimen download {output} > {log} 2>&1"


rule extract:
    input:
        raw="data/raw",
        code=code("extract"),
    output:
        directory("data/extracted"),
    params:
        extract=config["extract"],
    log:
        "logs/extract.log",
    benchmark:
        "logs/benchmarks/extract.tsv"
    conda:
        CONDA_ENV
    shell:
        "specimen extract {input.raw} {output} > {log} 2>&1"


rule ingest:
    input:
        extracted="data/extracted",
        code=code("ingest"),
    output:
        manifest="data/interim/manifest.csv",
        classes="data/interim/classes.json",
    params:
        split=config["dataset"]["split"],
        labels_file=config["dataset"]["labels_file"],
        columns=config["dataset"]["columns"],
        merge_train_valid=config["dataset"]["merge_train_valid"],
        max_pixels=config["image"]["max_pixels"],
        seed=config["seed"],
    log:
        "logs/ingest.log",
    benchmark:
        "logs/benchmarks/ingest.tsv"
    conda:
        CONDA_ENV
    shell:
        "specimen ingest {input.extracted} data/interim > {log} 2>&1"


rule preprocess:
    input:
        manifest="data/interim/manifest.csv",
        extracted="data/extracted",
        code=code("preprocess", "shards"),
    output:
        directory("data/processed"),
    params:
        image=config["image"],
        preprocess=config["preprocess"],
    threads: 8
    resources:
        mem_mb=2000,
    log:
        "logs/preprocess.log",
    benchmark:
        "logs/benchmarks/preprocess.tsv"
    conda:
        CONDA_ENV
    shell:
        "specimen preprocess {input.manifest} {input.extracted} {output} > {log} 2>&1"
