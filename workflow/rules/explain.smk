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
        gradcam=report("results/explain/{model}/gradcam.png", caption="../report/gradcam.rst",
                       **model_report("Grad-CAM")),
        feature_maps=report("results/explain/{model}/feature_maps.png", caption="../report/feature_maps.rst",
                            **model_report("feature maps")),
        activation_max=report("results/explain/{model}/activation_max.png", caption="../report/activation_max.rst",
                              **model_report("activation maximisation")),
        summary="results/explain/{model}/explain.json",
    params:
        tracked=tracked("explain"),  # the params its DVC stage lists
    threads: 2
    resources:
        mem_mb=2000,
    log:
        "logs/explain/{model}.log",
    benchmark:
        "logs/benchmarks/explain/{model}.tsv"
    conda:
        CONDA_ENV
    shell:
        "specimen explain results/models/{wildcards.model} --data {input.data} --index {input.index}"
        " --classes {input.classes} --out results/explain/{wildcards.model} > {log} 2>&1"
