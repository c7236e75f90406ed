"""Regenerate the paper's figures and tables from run histories (``python -m lipschitz_lr_paper_figures``)."""
