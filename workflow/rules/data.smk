# Data in: download -> extract -> ingest -> preprocess.


rule download:
    input:
        code=code("download"),
        # a link to a local: dataset (its content is compared by the digest below), else a note
        source=ancient(LOCAL_SOURCE),
    output:
        directory("data/raw"),
    log:
        "logs/download.log",
    benchmark:
        "logs/benchmarks/download.tsv"
    conda:
        CONDA_ENV
    params:
        tracked=tracked("download"),  # the params its DVC stage lists
        content=LOCAL_SOURCE_DIGEST,  # a local: dataset's content (specimen.localsource)
    shell:
        "specimen download {output} > {log} 2>&1"


rule extract:
    input:
        raw="data/raw",
        code=code("extract"),
    output:
        directory("data/extracted"),
    log:
        "logs/extract.log",
    benchmark:
        "logs/benchmarks/extract.tsv"
    conda:
        CONDA_ENV
    params:
        tracked=tracked("extract"),  # the params its DVC stage lists
    shell:
        "specimen extract {input.raw} {output} > {log} 2>&1"


rule ingest:
    input:
        extracted="data/extracted",
        raw="data/raw",  # the listing's files are read from the archive in place
        code=code("ingest"),
    output:
        manifest="data/interim/manifest.csv",
        classes="data/interim/classes.json",
    log:
        "logs/ingest.log",
    benchmark:
        "logs/benchmarks/ingest.tsv"
    conda:
        CONDA_ENV
    params:
        tracked=tracked("ingest"),  # the params its DVC stage lists
    shell:
        "specimen ingest {input.extracted} data/interim > {log} 2>&1"


rule preprocess:
    input:
        manifest="data/interim/manifest.csv",
        extracted="data/extracted",
        raw="data/raw",  # the listing's files are read from the archive in place
        code=code("preprocess"),
    output:
        directory("data/processed"),
    log:
        "logs/preprocess.log",
    benchmark:
        "logs/benchmarks/preprocess.tsv"
    conda:
        CONDA_ENV
    threads: 8
    resources:
        mem_mb=2000,
    params:
        tracked=tracked("preprocess"),  # the params its DVC stage lists
    shell:
        "specimen preprocess {input.manifest} {input.extracted} {output} > {log} 2>&1"
