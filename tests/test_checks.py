"""lipschitz_lr._checks: each check returns a plain Python value or refuses, naming the argument and its value."""

import math

import numpy as np
import pytest

from lipschitz_lr._checks import beta, choice, finite_nonnegative, integer, real


def at_least_one(name, value):
    return integer(name, value, 1)


def one_of_ab(name, value):
    return choice(name, value, ("a", "b"))


#: (check, value, the plain value it returns)
GOOD = [
    (real, np.float32(0.5), 0.5),
    (real, 3, 3.0),
    (finite_nonnegative, 0, 0.0),
    (at_least_one, np.int64(4), 4),
    (at_least_one, 4.0, 4),
    (beta, 0.0, 0.0),
    (one_of_ab, "b", "b"),
]
#: (check, value, the words of its error)
BAD = [
    (real, True, "requires a real number for x, got x=True"),
    (real, "1", "requires a real number for x, got x='1'"),
    (finite_nonnegative, -1e-3, "requires a finite, non-negative x, got x=-0.001"),
    (finite_nonnegative, math.inf, "got x=inf"),
    (finite_nonnegative, math.nan, "got x=nan"),
    (at_least_one, 4.5, "requires an integer x >= 1, got x=4.5"),
    (at_least_one, 0, "requires an integer x >= 1, got x=0"),
    (at_least_one, False, "requires an integer x >= 1, got x=False"),
    (beta, 1.0, "requires 0 <= x < 1, got x=1.0"),
    (one_of_ab, "c", "unknown x 'c'; expected one of a, b"),
]


@pytest.mark.parametrize(("check", "value", "expected"), GOOD)
def test_a_good_value_comes_back_plain(check, value, expected):
    result = check("x", value)
    assert result == expected and type(result) is type(expected)


@pytest.mark.parametrize(("check", "value", "words"), BAD)
def test_a_bad_value_is_refused_naming_it(check, value, words):
    with pytest.raises(ValueError) as error:
        check("x", value)
    assert words in str(error.value)
