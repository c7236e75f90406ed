import pytest

from lipschitz_lr_experiments.errors import ConfigError
from lipschitz_lr_experiments.registry import Registry


def test_register_lookup_and_names():
    colours = Registry("colour", {"red": 1})

    @colours.register("blue")
    def blue():
        return 2

    assert colours.lookup("blue")() == 2 and colours.names() == ("red", "blue")
    assert colours.names(lambda entry: entry == 1) == ("red",)
    with pytest.raises(ConfigError, match="unknown colour 'green'; expected one of red, blue"):
        colours.lookup("green")
    with pytest.raises(ValueError, match="colour 'red' is registered already"):
        colours.register("red")(3)
