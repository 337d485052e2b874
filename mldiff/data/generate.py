"""Training data from any ASE calculator: rattled, strained and MD snapshots.

The samplers return unlabeled ``ase.Atoms`` copies (``info["config_type"]``
says how each was made); :func:`label` runs a calculator (``EMT()``,
``mldiff.ase.Calculator("sw")``, a DFT code, ...) on them and returns
:class:`~mldiff.io.LabeledStructure` objects; :func:`generate` does all of it
and can write an extxyz file. Everything is reproducible from ``seed``: the
samplers draw from ``numpy.random.default_rng(seed)`` only.

Example:
    >>> from ase.build import bulk
    >>> from ase.calculators.emt import EMT
    >>> data = generate(bulk("Cu", "fcc", a=3.6, cubic=True), EMT(),
    ...                 n_rattled=2, n_strained=1, seed=0, progress=False)
    >>> [x.info["config_type"] for x in data]
    ['rattled', 'rattled', 'strained']
"""

import os
from collections.abc import Iterable, Sequence

import numpy as np

from mldiff.errors import DataError
from mldiff.io.extxyz import write_extxyz
from mldiff.io.labeled import LabeledStructure
from mldiff.structure import Structure

__all__ = ["rattled", "strained", "md_sampled", "label", "label_one", "generate"]


def _check_count(name: str, n) -> int:
    if int(n) != n or n < 0:
        raise DataError(f"{name} must be a non-negative integer, got {n!r}")
    return int(n)


def rattled(atoms, n: int, stdev: float = 0.05, *, seed: int = 0) -> list:
    """Copies of ``atoms`` with Gaussian displacements.

    Args:
        atoms: the reference ``ase.Atoms`` (not modified).
        n: number of copies.
        stdev: standard deviation of each Cartesian displacement, Å.
        seed: seed of ``numpy.random.default_rng``.

    Returns:
        ``n`` new ``ase.Atoms`` without calculator,
        ``info["config_type"] == "rattled"``.

    Example:
        >>> from ase.build import bulk
        >>> a, b = rattled(bulk("Cu", "fcc", a=3.6), 2, 0.1, seed=0)
        >>> bool((a.positions != b.positions).any())
        True
    """
    n = _check_count("n", n)
    rng = np.random.default_rng(seed)
    out = []
    for _ in range(n):
        a = atoms.copy()
        a.calc = None
        a.positions = a.positions + rng.normal(0.0, stdev, a.positions.shape)
        a.info["config_type"] = "rattled"
        out.append(a)
    return out


def strained(
    atoms,
    n: int,
    max_strain: float = 0.03,
    *,
    seed: int = 0,
    rattle_stdev: float = 0.0,
) -> list:
    """Copies of ``atoms`` under random homogeneous strains.

    Each copy gets a symmetric strain ε with the six independent components
    drawn uniformly from ``[−max_strain, max_strain]``; cell and positions are
    mapped by ``(1 + ε)`` (row vectors), then optionally rattled.

    Args:
        atoms: the reference periodic ``ase.Atoms`` (not modified).
        n: number of copies.
        max_strain: largest strain component (dimensionless, 0.03 = 3 %).
        seed: seed of ``numpy.random.default_rng``.
        rattle_stdev: extra Gaussian displacements after straining, Å.

    Returns:
        ``n`` new ``ase.Atoms``, ``info["config_type"] == "strained"`` and
        ``info["strain"]`` the Voigt strain (xx, yy, zz, yz, xz, xy) with
        tensor shear components.

    Example:
        >>> from ase.build import bulk
        >>> [a] = strained(bulk("Cu", "fcc", a=3.6), 1, 0.02, seed=0)
        >>> bool(abs(a.get_volume() / bulk("Cu", "fcc", a=3.6).get_volume() - 1) < 0.07)
        True
    """
    n = _check_count("n", n)
    if not all(atoms.pbc):
        raise DataError(
            f"strained() needs a cell periodic in all directions, got pbc="
            f"{atoms.pbc.tolist()}; use rattled() or md_sampled() for molecules"
        )
    rng = np.random.default_rng(seed)
    out = []
    for _ in range(n):
        v = rng.uniform(-max_strain, max_strain, 6)
        eps = np.array([[v[0], v[5], v[4]], [v[5], v[1], v[3]], [v[4], v[3], v[2]]])
        a = atoms.copy()
        a.calc = None
        a.set_cell(np.asarray(a.cell) @ (np.eye(3) + eps), scale_atoms=True)
        if rattle_stdev > 0:
            a.positions = a.positions + rng.normal(0.0, rattle_stdev, a.positions.shape)
        a.info["config_type"] = "strained"
        a.info["strain"] = v.copy()
        out.append(a)
    return out


def md_sampled(
    atoms,
    calculator,
    temperatures_K: Sequence[float],
    n_per_temperature: int,
    interval: int = 10,
    *,
    seed: int = 0,
    timestep_fs: float = 2.0,
    friction_per_fs: float = 0.01,
    equilibration_steps: int = 100,
    thermostat: str = "langevin",
) -> list:
    """Snapshots of ASE molecular dynamics at several temperatures.

    For each temperature: Maxwell–Boltzmann velocities, ``equilibration_steps``
    steps, then ``n_per_temperature`` snapshots every ``interval`` steps.

    Args:
        atoms: the starting ``ase.Atoms`` (not modified).
        calculator: any ASE calculator driving the dynamics (usually the one
            that labels the data).
        temperatures_K: temperatures, K.
        n_per_temperature: snapshots per temperature.
        interval: MD steps between snapshots.
        seed: seed of ``numpy.random.default_rng`` (velocities and the
            Langevin noise; one stream per temperature).
        timestep_fs: time step, fs.
        friction_per_fs: Langevin friction, 1/fs.
        equilibration_steps: steps discarded before the first snapshot.
        thermostat: ``"langevin"`` (NVT) or ``"nve"`` (velocity Verlet).

    Returns:
        ``len(temperatures_K) * n_per_temperature`` new ``ase.Atoms`` without
        calculator, ``info["config_type"] == "md"`` and
        ``info["temperature_K"]`` the target temperature.
    """
    from ase import units
    from ase.md import velocitydistribution as vd
    from ase.md.langevin import Langevin
    from ase.md.verlet import VelocityVerlet

    n_per_temperature = _check_count("n_per_temperature", n_per_temperature)
    interval = _check_count("interval", interval)
    equilibration_steps = _check_count("equilibration_steps", equilibration_steps)
    if thermostat not in ("langevin", "nve"):
        raise DataError(
            f"unknown thermostat {thermostat!r}; choose 'langevin' or 'nve'"
        )
    if interval < 1:
        raise DataError(f"interval must be at least 1 MD step, got {interval}")
    # ASE >= 3.29 renamed MaxwellBoltzmannDistribution to thermalize_momenta
    thermalize = (
        getattr(vd, "thermalize_momenta", None) or vd.MaxwellBoltzmannDistribution
    )
    streams = np.random.SeedSequence(seed).spawn(len(temperatures_K))
    out = []
    for temperature, stream in zip(temperatures_K, streams, strict=True):
        rng = np.random.default_rng(stream)
        a = atoms.copy()
        a.calc = calculator
        thermalize(a, temperature_K=float(temperature), rng=rng)
        vd.Stationary(a)
        dt = timestep_fs * units.fs
        if thermostat == "langevin":
            dyn = Langevin(
                a,
                dt,
                temperature_K=float(temperature),
                friction=friction_per_fs / units.fs,
                fixcm=False,
                rng=rng,
            )
        else:
            dyn = VelocityVerlet(a, dt)
        dyn.run(equilibration_steps)
        for _ in range(n_per_temperature):
            dyn.run(interval)
            snap = a.copy()
            snap.calc = None
            snap.arrays.pop("momenta", None)  # positions only; labels come later
            snap.info["config_type"] = "md"
            snap.info["temperature_K"] = float(temperature)
            out.append(snap)
    return out


def label(
    structures: Iterable, calculator, *, progress: bool = True
) -> list[LabeledStructure]:
    """Label structures with an ASE calculator.

    Energy and forces always; stress for cells periodic in all directions when
    the calculator implements it.

    Args:
        structures: ``ase.Atoms`` objects (not modified; copies are computed).
        calculator: any ASE calculator.
        progress: show a tqdm bar (only on a terminal).

    Returns:
        One :class:`LabeledStructure` per structure: energy (eV), forces
        (eV/Å), stress (eV/Å³ or ``None``), ``info`` copied from the atoms.

    Example:
        >>> from ase.build import bulk
        >>> from ase.calculators.emt import EMT
        >>> [x] = label([bulk("Cu", "fcc", a=3.6)], EMT(), progress=False)
        >>> round(x.energy, 4)
        -0.0067
    """
    from tqdm import tqdm

    structures = list(structures)
    bar = tqdm(
        structures,
        desc="labeling",
        unit="structure",
        disable=None if progress else True,
    )
    return [
        label_one(atoms, calculator, where=f"structure {k}")
        for k, atoms in enumerate(bar)
    ]


def label_one(atoms, calculator, *, where: str = "structure") -> LabeledStructure:
    """Label one structure with an ASE calculator (the body of :func:`label`).

    Args:
        atoms: an ``ase.Atoms`` (not modified; a copy is computed).
        calculator: any ASE calculator.
        where: names the structure in error messages.

    Returns:
        A :class:`LabeledStructure`: energy (eV), forces (eV/Å), stress
        (eV/Å³, ASE sign) for cells periodic in every direction when the
        calculator implements it, else ``None``; ``info`` copied from ``atoms``.
    """
    from ase.calculators.calculator import PropertyNotImplementedError

    a = atoms.copy()
    a.calc = calculator
    energy = a.get_potential_energy()
    forces = a.get_forces()
    stress = None
    if all(a.pbc):
        try:
            stress = a.get_stress(voigt=False)
        except PropertyNotImplementedError:
            stress = None
    return LabeledStructure.create(
        Structure.from_ase(a), energy, forces, stress, dict(atoms.info), where=where
    )


def generate(
    base_atoms,
    calculator,
    *,
    n_rattled: int = 0,
    rattle_stdev: float = 0.05,
    n_strained: int = 0,
    max_strain: float = 0.03,
    strain_rattle_stdev: float = 0.0,
    md_temperatures_K: Sequence[float] = (),
    n_per_temperature: int = 0,
    md_interval: int = 10,
    md_timestep_fs: float = 2.0,
    seed: int = 0,
    progress: bool = True,
    path: str | os.PathLike | None = None,
) -> list[LabeledStructure]:
    """Rattled, strained and MD-sampled structures labeled by one calculator.

    Args:
        base_atoms: the reference ``ase.Atoms`` (e.g. a relaxed supercell).
        calculator: ASE calculator for labels (and MD).
        n_rattled: number of rattled copies.
        rattle_stdev: their displacement standard deviation, Å.
        n_strained: number of strained copies.
        max_strain: largest strain component.
        strain_rattle_stdev: displacements added to strained copies, Å.
        md_temperatures_K: MD temperatures, K.
        n_per_temperature: MD snapshots per temperature.
        md_interval: MD steps between snapshots.
        md_timestep_fs: MD time step, fs.
        seed: master seed; each sampler gets its own stream from it.
        progress: show a tqdm bar while labeling (only on a terminal).
        path: if given, also write the result there as extxyz (atomically).

    Returns:
        Labeled structures: rattled, then strained, then MD snapshots.
    """
    s_rattle, s_strain, s_md = (
        int(c.generate_state(1)[0]) for c in np.random.SeedSequence(seed).spawn(3)
    )
    structures = rattled(base_atoms, n_rattled, rattle_stdev, seed=s_rattle)
    if n_strained:
        structures += strained(
            base_atoms,
            n_strained,
            max_strain,
            seed=s_strain,
            rattle_stdev=strain_rattle_stdev,
        )
    if len(md_temperatures_K) and n_per_temperature:
        structures += md_sampled(
            base_atoms,
            calculator,
            md_temperatures_K,
            n_per_temperature,
            md_interval,
            seed=s_md,
            timestep_fs=md_timestep_fs,
        )
    items = label(structures, calculator, progress=progress)
    if path is not None:
        write_extxyz(path, items)
    return items
