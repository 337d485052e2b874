"""Stillinger-Weber — placeholder being written by a helper session."""
from mldiff.potentials._base import Potential


def stillinger_weber(**kwargs) -> Potential:
    raise NotImplementedError
