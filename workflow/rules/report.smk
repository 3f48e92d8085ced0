# Reports: evaluate and explain (one job per model), baselines, and the run's comparison and summary;
# results/report/summary.json is written last.


rule evaluate:
    input:
        model="results/models/{model}/model.keras",
        history="results/models/{model}/history.csv",
        data="data/processed",
        index="data/clean/index.csv",
        classes="data/interim/classes.json",
        code=code("evaluate"),
    output:
        metrics=report(
            "results/evaluation/{model}/metrics.json", caption="../report/metrics.rst", **model_report("metrics")
        ),
        report_txt="results/evaluation/{model}/classification_report.txt",
        report_json="results/evaluation/{model}/classification_report.json",
        report_csv=report(
            "results/evaluation/{model}/classification_report.csv",
            caption="../report/classification_report.rst",
            **model_report("classification report"),
        ),
        confusion_csv="results/evaluation/{model}/confusion_matrix.csv",
        confusion=report(
            "results/evaluation/{model}/confusion_matrix.png",
            caption="../report/confusion_matrix.rst",
            **model_report("confusion matrix"),
        ),
        confusion_normalized=report(
            "results/evaluation/{model}/confusion_matrix_normalized.png",
            caption="../report/confusion_matrix_normalized.rst",
            **model_report("confusion matrix, normalised"),
        ),
        f1=report(
            "results/evaluation/{model}/f1_per_class.png",
            caption="../report/f1_per_class.rst",
            **model_report("F1 per class"),
        ),
        curves=report(
            "results/evaluation/{model}/curves.png", caption="../report/curves.rst", **model_report("training curves")
        ),
        mistakes=report(
            "results/evaluation/{model}/mistakes.png",
            caption="../report/mistakes.rst",
            **model_report("confident mistakes"),
        ),
        grid=report(
            "results/evaluation/{model}/predictions.png",
            caption="../report/predictions.rst",
            **model_report("predictions"),
        ),
        calibration=report(
            "results/evaluation/{model}/calibration.png",
            caption="../report/calibration.rst",
            **model_report("calibration"),
        ),
        calibration_csv="results/evaluation/{model}/calibration.csv",
        flags="results/evaluation/{model}/flags.csv",
        predictions="results/evaluation/{model}/predictions.csv",
        history="results/curves/{model}.csv",
    log:
        "logs/evaluate/{model}.log",
    benchmark:
        "logs/benchmarks/evaluate/{model}.tsv"
    conda:
        CONDA_ENV
    resources:
        mem_mb=2000,
    params:
        tracked=tracked("evaluate"),  # the params its DVC stage lists
    shell:
        "specimen evaluate results/models/{wildcards.model} --data {input.data} --index {input.index}"
        " --classes {input.classes} --out results/evaluation/{wildcards.model} --curves {output.history} > {log} 2>&1"


# What each model looks at (`specimen explain --help`): Grad-CAM over a seeded sample of test
# images, the first convolution layers' feature maps, and activation maximisation per class.
# One job per model in train.models, like evaluate.


rule explain:
    input:
        model="results/models/{model}/model.keras",
        data="data/processed",
        index="data/clean/index.csv",
        classes="data/interim/classes.json",
        code=code("explain"),
    output:
        gradcam=report(
            "results/explain/{model}/gradcam.png", caption="../report/gradcam.rst", **model_report("Grad-CAM")
        ),
        feature_maps=report(
            "results/explain/{model}/feature_maps.png",
            caption="../report/feature_maps.rst",
            **model_report("feature maps"),
        ),
        activation_max=report(
            "results/explain/{model}/activation_max.png",
            caption="../report/activation_max.rst",
            **model_report("activation maximisation"),
        ),
        summary="results/explain/{model}/explain.json",
    log:
        "logs/explain/{model}.log",
    benchmark:
        "logs/benchmarks/explain/{model}.tsv"
    conda:
        CONDA_ENV
    threads: 2
    resources:
        mem_mb=2000,
    params:
        tracked=tracked("explain"),  # the params its DVC stage lists
    shell:
        "specimen explain results/models/{wildcards.model} --data {input.data} --index {input.index}"
        " --classes {input.classes} --out results/explain/{wildcards.model} > {log} 2>&1"


# Baselines: scikit-learn models on pixels and features, against which the CNNs are compared.


rule baselines:
    input:
        data="data/processed",
        index="data/clean/index.csv",
        classes="data/interim/classes.json",
        features=FEATURES,
        code=code("baselines"),
    output:
        summary=report(
            "results/baselines/summary.csv",
            caption="../report/baselines.rst",
            category="Comparison",
            labels={"table": "baselines"},
        ),
        plot=report(
            "results/baselines/summary.png",
            caption="../report/baselines.rst",
            category="Comparison",
            labels={"figure": "baselines"},
        ),
        # one folder per input x model (reports, metrics.json, fit.json): a single output, as in dvc.yaml
        runs=directory("results/baselines/runs"),
    log:
        "logs/baselines.log",
    benchmark:
        "logs/benchmarks/baselines.tsv"
    conda:
        CONDA_ENV
    threads: 2
    resources:
        mem_mb=4000,
    params:
        tracked=tracked("baselines"),  # the params its DVC stage lists
    shell:
        "specimen baselines --data {input.data} --index {input.index} --classes {input.classes}"
        " --features {input.features} --out results/baselines > {log} 2>&1"


rule report:
    input:
        metrics=expand("results/evaluation/{model}/metrics.json", model=MODELS),
        meta=expand("results/models/{model}/meta.json", model=MODELS),
        explain=expand("results/explain/{model}/explain.json", model=MODELS),
        baselines="results/baselines/summary.csv",
        processed="data/processed",
        clean_index="data/clean/index.csv",
        removed="data/clean/removed.csv",
        clean_summary="data/clean/summary.json",
        gallery="data/clean/gallery",
        raw="data/raw",
        code=code("report"),
    output:
        comparison=report(
            "results/report/comparison.csv",
            caption="../report/comparison_table.rst",
            category="Comparison",
            labels={"table": "models and baselines"},
        ),
        plot=report(
            "results/report/comparison.png",
            caption="../report/comparison.rst",
            category="Comparison",
            labels={"figure": "models and baselines"},
        ),
        headline="results/report/headline.rst",  # the first page of `snakemake --report`
        summary="results/report/summary.json",
        old_summary="results/all",  # its name in specimen 0.1: the same bytes, until 0.3
    log:
        "logs/report.log",
    benchmark:
        "logs/benchmarks/report.tsv"
    conda:
        CONDA_ENV
    params:
        tracked=tracked("report"),  # the params its DVC stage lists
    shell:
        "specimen report --evaluation results/evaluation --models results/models --data {input.processed}"
        " --clean data/clean --raw {input.raw} --baselines {input.baselines} --explain results/explain --out results/report"
        " --summary {output.summary} {output.old_summary} > {log} 2>&1"
