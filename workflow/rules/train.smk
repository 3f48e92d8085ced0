# Models: train and evaluate, one job per model in train.models.
# A killed training job resumes at its last finished epoch from logs/train/<model>/ (not an
# output: Snakemake and DVC clear outputs before a job, and the backups must survive that).


rule train:
    input:
        data="data/processed",
        index="data/clean/index.csv",
        classes="data/interim/classes.json",
        train="data/clean/train.csv",
        weights="data/clean/class_weights.json",
        code=code("train"),
    output:
        model="results/models/{model}/model.keras",
        history="results/models/{model}/history.csv",
        meta="results/models/{model}/meta.json",
        tensorboard=directory("results/models/{model}/tensorboard"),
        dvclive=directory("results/models/{model}/dvclive"),
    params:
        tracked=tracked("train"),  # the params its DVC stage lists
    threads: 2
    resources:
        mem_mb=4000,
        runtime=120,
        gpu=config["train"]["gpus"],  # the SLURM profile asks for them; locally: --resources gpu=N
    log:
        "logs/train/{model}.log",
    benchmark:
        "logs/benchmarks/train/{model}.tsv"
    conda:
        CONDA_ENV
    shell:
        "specimen train {wildcards.model} --data {input.data} --index {input.index} --classes {input.classes}"
        " --train {input.train} --weights {input.weights} --out results/models/{wildcards.model} > {log} 2>&1"


rule evaluate:
    input:
        model="results/models/{model}/model.keras",
        history="results/models/{model}/history.csv",
        data="data/processed",
        index="data/clean/index.csv",
        classes="data/interim/classes.json",
        code=code("evaluate"),
    output:
        metrics=report("results/reports/{model}/metrics.json", caption="../report/metrics.rst", **model_report("metrics")),
        report_txt="results/reports/{model}/classification_report.txt",
        report_json="results/reports/{model}/classification_report.json",
        report_csv=report("results/reports/{model}/classification_report.csv", caption="../report/classification_report.rst", **model_report("classification report")),
        confusion_csv="results/reports/{model}/confusion_matrix.csv",
        confusion=report("results/reports/{model}/confusion_matrix.png", caption="../report/confusion_matrix.rst", **model_report("confusion matrix")),
        confusion_normalized=report("results/reports/{model}/confusion_matrix_normalized.png", caption="../report/confusion_matrix_normalized.rst", **model_report("confusion matrix, normalised")),
        f1=report("results/reports/{model}/f1_per_class.png", caption="../report/f1_per_class.rst", **model_report("F1 per class")),
        curves=report("results/reports/{model}/curves.png", caption="../report/curves.rst", **model_report("training curves")),
        mistakes=report("results/reports/{model}/mistakes.png", caption="../report/mistakes.rst", **model_report("confident mistakes")),
        grid=report("results/reports/{model}/predictions.png", caption="../report/predictions.rst", **model_report("predictions")),
        calibration=report("results/reports/{model}/calibration.png", caption="../report/calibration.rst", **model_report("calibration")),
        calibration_csv="results/reports/{model}/calibration.csv",
        predictions="results/reports/{model}/predictions.csv",
        history="results/curves/{model}.csv",
    params:
        tracked=tracked("evaluate"),  # the params its DVC stage lists
    resources:
        mem_mb=2000,
    log:
        "logs/evaluate/{model}.log",
    benchmark:
        "logs/benchmarks/evaluate/{model}.tsv"
    conda:
        CONDA_ENV
    shell:
        "specimen evaluate results/models/{wildcards.model} --data {input.data} --index {input.index}"
        " --classes {input.classes} --out results/reports/{wildcards.model} --curves {output.history} > {log} 2>&1"
