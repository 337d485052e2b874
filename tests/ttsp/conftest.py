"""Shared synthetic data sets and their (expensive) analyses, computed once."""

import pytest

from mldiff import ttsp
from mldiff.ttsp.data import two_process_data, wlf_maxwell_data


@pytest.fixture(scope="session")
def simple_data():
    """Generalized Maxwell, 20 modes, WLF C1=17.44, C2=51.6 K at 373 K, 8 T, 2 %."""
    return wlf_maxwell_data(noise=0.02, seed=0)


@pytest.fixture(scope="session")
def complex_data():
    """Two relaxation processes with Arrhenius Ea = 250 and 60 kJ/mol, 8 T, 2 %."""
    return two_process_data(noise=0.02, seed=0)


@pytest.fixture(scope="session")
def simple_summary(simple_data):
    return ttsp.analyse(simple_data, 373.0)


@pytest.fixture(scope="session")
def complex_summary(complex_data):
    return ttsp.analyse(complex_data, 320.0)
