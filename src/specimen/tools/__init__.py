"""Tools (workflow/rules/tools.smk): predict, search and the optional autoencoder.

predict labels new images with a trained model; search finds a dataset's images nearest to one;
autoencoder learns one class and generates images of it.
"""
