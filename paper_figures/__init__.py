"""Regenerate the paper's figures and tables from run histories (``python -m paper_figures``)."""
