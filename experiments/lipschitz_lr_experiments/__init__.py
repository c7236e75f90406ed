"""Reproduction harness for LipschitzLR: the paper's models, data, configs and one training loop."""
