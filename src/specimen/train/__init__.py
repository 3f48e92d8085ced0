"""Models (workflow/rules/train.smk): train, one job per model, and the optional tune.

inputs is the tf.data pipeline over the shards; models builds small_cnn and the pretrained
backbones; setup holds what train and tune share (phases, seeds, precision, callbacks); resume
keeps a killed training resumable; train runs one model's phases; tune searches its settings.
"""
