"""Oracles: the expensive reference that labels what active learning asks for.

An oracle is a function ``structure -> LabeledStructure`` (energy, forces and,
for periodic cells, stress). :func:`ase_oracle` wraps any ASE calculator (DFT
through ASE, or EMT / Stillinger–Weber as cheap stand-ins); a plain Python
callable returning a :class:`~mldiff.io.labeled.LabeledStructure` works too.
:func:`label_all` calls an oracle on many structures and records a failure
instead of stopping the run.
"""

import traceback
from collections.abc import Callable, Sequence

from mldiff.io.labeled import LabeledStructure
from mldiff.structure import Structure

__all__ = ["ase_oracle", "label_all"]


def ase_oracle(calculator) -> Callable[[Structure], LabeledStructure]:
    """An oracle from an ASE calculator.

    Args:
        calculator: any ASE calculator; it is attached to a copy of each
            structure (``Structure.to_ase()``), never to the caller's atoms.

    Returns:
        ``oracle(structure) -> LabeledStructure`` with energy (eV), forces
        (eV/Å) and, for cells periodic in every direction, stress (eV/Å³, ASE
        sign) when the calculator implements it.

    Example:
        >>> from ase.build import bulk
        >>> from ase.calculators.emt import EMT
        >>> s = Structure.from_ase(bulk("Cu", "fcc", a=3.6))
        >>> round(ase_oracle(EMT())(s).energy, 4)
        -0.0067
    """
    from mldiff.data.generate import label_one

    def oracle(structure: Structure) -> LabeledStructure:
        labeled = label_one(structure.to_ase(), calculator, where="oracle result")
        return labeled.replace(structure=structure, info={})

    return oracle


def label_all(
    oracle: Callable[[Structure], LabeledStructure],
    structures: Sequence[Structure],
    infos: Sequence[dict] | None = None,
    *,
    on_result: Callable[[int, LabeledStructure | None, str | None], None]
    | None = None,
) -> tuple[list[LabeledStructure | None], list[dict]]:
    """Label each structure; a failing call is recorded and skipped.

    Args:
        oracle: ``structure -> LabeledStructure``.
        structures: what to label.
        infos: optional metadata merged into each result's ``info``.
        on_result: called after each structure with ``(index, labeled or None,
            error message or None)`` — e.g. to save progress atomically.

    Returns:
        ``(labeled, failures)``: ``labeled[i]`` is ``None`` where the oracle
        raised or returned something without energy and forces; ``failures``
        holds ``{"index", "error"}`` records.

    Example:
        >>> def broken(s):
        ...     raise RuntimeError("SCF did not converge")
        >>> from ase.build import bulk
        >>> out, fails = label_all(broken, [Structure.from_ase(bulk("Cu"))])
        >>> out, fails[0]["error"]
        ([None], 'RuntimeError: SCF did not converge')
    """
    labeled: list[LabeledStructure | None] = []
    failures: list[dict] = []
    for i, s in enumerate(structures):
        error = None
        try:
            item = oracle(s)
            if not isinstance(item, LabeledStructure):
                raise TypeError(
                    f"the oracle returned {type(item).__name__}, not a "
                    "LabeledStructure; build one with LabeledStructure.create"
                )
            if item.energy is None or item.forces is None:
                raise ValueError("the oracle returned no energy or no forces")
            info = {**(infos[i] if infos is not None else {}), **dict(item.info)}
            item = LabeledStructure.create(
                item.structure, item.energy, item.forces, item.stress, info
            )
        except Exception as err:  # noqa: BLE001 - any oracle failure is recorded
            item = None
            error = f"{type(err).__name__}: {err}"
            failures.append(
                {"index": i, "error": error, "traceback": traceback.format_exc()}
            )
        labeled.append(item)
        if on_result is not None:
            on_result(i, item, error)
    return labeled, failures
