"""The bundle's noise generator (splitmix64-boxmuller) matches SplitMix64's published outputs and an
independent scalar implementation of DESIGN.md §5, value for value."""
import math
import struct

import numpy as np
import pytest

from igr_edge.errors import IgrEdgeError
from igr_edge.noise import normal, splitmix64

MASK = 2**64 - 1


def test_splitmix64_matches_the_reference_outputs_for_seed_1234567():
    # the first outputs of Vigna's splitmix64.c seeded with 1234567
    assert [int(x) for x in splitmix64(1234567, 5)] == [6457827717110365317, 3203168211198807973,
                                                         9817491932198370423, 4593380528125082431,
                                                         16408922859458223821]


def scalar_normal(seed: int, count: int) -> list[float]:
    """DESIGN.md §5 written out one value at a time with Python ints and math (no numpy)."""
    state, out = seed, []
    def next64():
        nonlocal state
        state = (state + 0x9E3779B97F4A7C15) & MASK
        z = state
        z = ((z ^ (z >> 30)) * 0xBF58476D1CE4E5B9) & MASK
        z = ((z ^ (z >> 27)) * 0x94D049BB133111EB) & MASK
        return z ^ (z >> 31)
    while len(out) < count:
        u1 = ((next64() >> 11) + 1) / 2**53
        u2 = (next64() >> 11) / 2**53
        r = math.sqrt(-2.0 * math.log(u1))
        out += [r * math.cos(2 * math.pi * u2), r * math.sin(2 * math.pi * u2)]
    return [struct.unpack("f", struct.pack("f", v))[0] for v in out[:count]]     # to float32


@pytest.mark.parametrize("seed", [0, 1, 42, 2**63 + 5, 2**64 - 1])
def test_normal_equals_the_scalar_definition_in_c_order(seed):
    noise = normal(seed, (3, 5, 7))
    assert noise.dtype == np.float32 and noise.shape == (3, 5, 7)
    assert noise.ravel().tolist() == scalar_normal(seed, 105)           # odd count: the last pair is cut


def test_normal_is_standard_normal_and_seeds_differ():
    x = normal(7, (1000, 1000)).astype(np.float64)
    assert abs(x.mean()) < 0.005 and abs(x.std() - 1) < 0.005 and abs((x**3).mean()) < 0.02
    assert not np.array_equal(normal(7, (4, 32, 24)), normal(8, (4, 32, 24)))
    assert np.array_equal(normal(7, (4, 32, 24)), normal(7, (4, 32, 24)))


@pytest.mark.parametrize("seed", [-1, 2**64, 1.5, "3", None, True])
def test_bad_seeds_and_generators_are_refused(seed):
    with pytest.raises(IgrEdgeError, match="seed"):
        normal(seed, (2,))


def test_unknown_generator_is_refused():
    with pytest.raises(IgrEdgeError, match="unknown"):
        normal(0, (2,), generator="mt19937")
