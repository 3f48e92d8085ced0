"""Data in (workflow/rules/data.smk): download -> extract -> ingest -> preprocess.

download puts the dataset's archive in data/raw/ (demo, local:PATH, kaggle:OWNER/SLUG, url:URL);
extract unpacks it safely into data/extracted/; ingest accounts for every file in
data/interim/manifest.csv; preprocess decodes and resizes the kept images into data/processed/'s
shards. images holds the decoding that preprocess, predict and search share.
"""
