# The run's comparison and summary; results/all is written last.


rule report:
    input:
        metrics=expand("results/reports/{model}/metrics.json", model=MODELS),
        meta=expand("results/models/{model}/meta.json", model=MODELS),
        explain=expand("results/explain/{model}/explain.json", model=MODELS),
        baselines="results/baselines/summary.csv",
        processed="data/processed",
        clean_index="data/clean/index.csv",
        removed="data/clean/removed.csv",
        raw="data/raw",
        code=code("report"),
    output:
        comparison=report("results/report/comparison.csv", caption="../report/comparison_table.rst", category="Comparison", labels={"table": "models and baselines"}),
        plot=report("results/report/comparison.png", caption="../report/comparison.rst", category="Comparison", labels={"figure": "models and baselines"}),
        summary="results/all",
    params:
        tracked=tracked("report"),  # the params its DVC stage lists
    log:
        "logs/report.log",
    benchmark:
        "logs/benchmarks/report.tsv"
    conda:
        CONDA_ENV
    shell:
        "specimen report --reports results/reports --models results/models --data {input.processed}"
        " --clean data/clean --raw {input.raw} --baselines {input.baselines} --explain results/explain --out results/report"
        " --summary {output.summary} > {log} 2>&1"
