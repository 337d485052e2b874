"""EMT — placeholder being written by a helper session."""
from mldiff.potentials._base import Potential


def emt(**kwargs) -> Potential:
    raise NotImplementedError
