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
    # measured at 100,000 images, 3.7 GB (bench/scale.py): 42 MB, 7 to 14 s for a local: copy; a
    # Kaggle download of that size takes what the network gives
    resources:
        mem_mb=1000,
        runtime=120,
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
    # measured at 100,000 images (bench/scale.py): 0.16 GB and 5 s
    resources:
        mem_mb=1000,
        runtime=30,
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
    # measured at 100,000 images (bench/scale.py): 0.36 GB (every file's manifest row) and 21 s
    resources:
        mem_mb=2000,
        runtime=30,
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
    # measured at 100,000 images, 128 px, 2 threads (bench/scale.py): 0.52 GB (all processes) and 49 s
    resources:
        mem_mb=2000,
        runtime=60,
    params:
        tracked=tracked("preprocess"),  # the params its DVC stage lists
    shell:
        "specimen preprocess {input.manifest} {input.extracted} {output} > {log} 2>&1"
