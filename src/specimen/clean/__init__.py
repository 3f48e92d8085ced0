"""Cleaning (workflow/rules/clean.smk): embed -> clean -> balance.

embed writes one feature vector per image (features holds the extractors, which search shares);
clean removes copies, leaks and unusable images, and flags or removes what the quality, outlier
rules find (quality, duplicates, outliers; gallery draws what was removed); balance writes the
training index and the class weights.
"""
