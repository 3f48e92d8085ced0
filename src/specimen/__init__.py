"""specimen: a reproducible image-classification pipeline (Snakemake + DVC)."""

__version__ = "0.2.0"


class SpecimenError(Exception):
    """An error the user can fix; the CLI prints it as one line, never a traceback."""
