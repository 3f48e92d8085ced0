# Baselines: scikit-learn models on pixels and features, against which the CNNs are compared.


rule baselines:
    input:
        data="data/processed",
        index="data/clean/index.csv",
        classes="data/interim/classes.json",
        features=FEATURES,
        code=code("baselines"),
    output:
        summary=report("results/baselines/summary.csv", caption="../report/baselines.rst", category="Comparison", labels={"table": "baselines"}),
        plot=report("results/baselines/summary.png", caption="../report/baselines.rst", category="Comparison", labels={"figure": "baselines"}),
        # one folder per input x model (reports, metrics.json, fit.json): a single output, as in dvc.yaml
        runs=directory("results/baselines/runs"),
    params:
        tracked=tracked("baselines"),  # the params its DVC stage lists
    threads: 2
    resources:
        mem_mb=4000,
    log:
        "logs/baselines.log",
    benchmark:
        "logs/benchmarks/baselines.tsv"
    conda:
        CONDA_ENV
    shell:
        "specimen baselines --data {input.data} --index {input.index} --classes {input.classes}"
        " --features {input.features} --out results/baselines > {log} 2>&1"
