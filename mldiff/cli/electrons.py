"""``mldiff electrons SPECIES`` and ``mldiff carriers MATERIAL``.

``electrons`` prints the configuration, Hund's-rule term and moments of an atom
or ion (``Fe``, ``Fe3+``, ``Ho3+``); ``effective_moment_bohr`` is the spin-only
value unless an f subshell is open, where it is ``g_J √(J(J+1))``.

``carriers`` prints the band gap, Fermi level (from the valence-band maximum) and
electron, hole and intrinsic concentrations of Si, Ge or GaAs at a temperature
and doping. ``--json`` prints one JSON object instead of a table.
"""

import json

_ELECTRON_KEYS = (
    "configuration",
    "noble_gas_configuration",
    "unpaired_electrons",
    "term_symbol",
    "spin_only_moment_bohr",
    "free_ion_moment_bohr",
    "effective_moment_bohr",
)
_CARRIER_KEYS = (
    "band_gap_ev",
    "fermi_level_ev",
    "electrons_cm3",
    "holes_cm3",
    "intrinsic_cm3",
    "ionized_donors_cm3",
    "ionized_acceptors_cm3",
)


def register(sub) -> None:
    """Add the ``electrons`` and ``carriers`` subcommands."""
    p = sub.add_parser(
        "electrons", help="electron configuration, term symbol, magnetic moment"
    )
    p.add_argument("species", help="atom or ion, e.g. Fe, Fe3+, Ho3+, O2-")
    p.add_argument(
        "--octahedral",
        choices=("high", "low"),
        help="add the octahedral crystal-field spin state of a d-block ion",
    )
    p.add_argument("--json", action="store_true", help="print one JSON object")
    p.set_defaults(run=run_electrons)

    p = sub.add_parser(
        "carriers", help="semiconductor carrier concentrations and Fermi level"
    )
    p.add_argument("material", help="Si, Ge or GaAs")
    p.add_argument("--temperature", type=float, default=300.0, help="K (300)")
    p.add_argument("--donors", type=float, default=0.0, help="N_D, cm^-3 (0)")
    p.add_argument("--acceptors", type=float, default=0.0, help="N_A, cm^-3 (0)")
    p.add_argument("--json", action="store_true", help="print one JSON object")
    p.set_defaults(run=run_carriers)


def run_electrons(args) -> int:
    """Print the free-ion summary of one species."""
    from mldiff.electrons.magnetism import free_ion

    result = free_ion(args.species, octahedral=args.octahedral)
    if args.json:
        print(json.dumps(result))
        return 0
    keys = _ELECTRON_KEYS + ("effective_moment_rule",)
    if args.octahedral:
        keys += ("octahedral_unpaired_electrons", "octahedral_spin_only_moment_bohr")
    print(f"{'species':<34s} {result['species']}")
    for key in keys:
        value = result[key]
        text = f"{value:.4f}" if isinstance(value, float) else str(value)
        print(f"{key:<34s} {text}")
    return 0


def run_carriers(args) -> int:
    """Print carrier concentrations of one material at one temperature."""
    from mldiff.electrons.carriers import carrier_concentrations
    from mldiff.electrons.materials import semiconductor

    material = semiconductor(args.material)
    r = carrier_concentrations(material, args.temperature, args.donors, args.acceptors)
    result = {
        "material": args.material,
        "temperature_k": args.temperature,
        "donors_cm3": args.donors,
        "acceptors_cm3": args.acceptors,
    }
    result.update({k: float(r[k]) for k in _CARRIER_KEYS})
    if args.json:
        print(json.dumps(result))
        return 0
    for key, value in result.items():
        text = f"{value:.6g}" if isinstance(value, float) else str(value)
        print(f"{key:<24s} {text}")
    return 0
