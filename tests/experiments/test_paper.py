"""lipschitz_lr_experiments.paper: every row of the paper's Table 1 names a bundled config that reruns it."""

from lipschitz_lr_experiments.config import bundled_configs, load_config
from lipschitz_lr_experiments.paper import PAPER_TABLE1


def test_every_row_names_a_bundled_lipschitz_config_and_a_percentage():
    assert len({row.config for row in PAPER_TABLE1}) == len(PAPER_TABLE1)
    for row in PAPER_TABLE1:
        assert row.config in bundled_configs(), row
        assert load_config(row.config).schedule in ("lipschitz", "constant"), row
        assert 1.0 < row.paper <= 100.0, row  # a percentage (CIFAR-100 baselines reach 27%)
