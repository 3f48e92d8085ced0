# Image search (optional, not part of results/all): for each of search.targets, the nearest images of
# the extracted dataset, results/search/<target>.csv (the target as written in params.yaml, .csv added:
# dvc.yaml's foreach can name a file after an item, not after part of one).
#   snakemake --cores 1 "results/search/train/3/img_0001.png.csv"     # one (a target in params.yaml or not)
#   snakemake --cores 1 search_all                                    # every one of search.targets
# A target outside the dataset is read but not tracked: rename it (or --forcerun) when it changes.

SEARCHES = expand("results/search/{target}.csv", target=config["search"]["targets"])


rule search:
    input:
        extracted="data/extracted",
        code=code("search"),
    output:
        "results/search/{target}.csv",
    params:
        tracked=tracked("search"),  # the params its DVC stage lists
    resources:
        mem_mb=2000,
    log:
        "logs/search/{target}.log",
    benchmark:
        "logs/benchmarks/search/{target}.tsv"
    conda:
        CONDA_ENV
    shell:
        'specimen search "{wildcards.target}" --data {input.extracted} --out "{output}" > "{log}" 2>&1'


rule search_all:
    input:
        SEARCHES,
