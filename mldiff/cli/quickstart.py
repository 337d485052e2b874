"""``mldiff quickstart``: the main job, end to end, on an embedded default.

1. **Reference data.** fcc Cu at EMT's equilibrium lattice constant: rattled,
   strained and Langevin-MD configurations of the 2×2×2 conventional cell (32
   atoms), labeled by ASE's ``EMT()`` — the stand-in for expensive quantum
   calculations (any ASE calculator, e.g. a DFT code, plugs in the same way;
   see the README). Split 80/10/10 into train / validation / test.
2. **Ensemble.** ``--members`` small NequIP-style equivariant potentials trained
   together in one vmapped program (:func:`mldiff.ensemble.train_ensemble`),
   whose force spread is calibrated on the validation structures: one global
   scale ``α`` (:mod:`mldiff.calibration`, Musil et al. 2019), since a small
   committee is overconfident.
3. **Test errors** of the committee mean (energy per atom, forces).
4. **Phonons with error bars.** Force constants of every member from one
   vmapped Hessian program (:func:`mldiff.ensemble.ensemble_phonons`, 3×3×3
   supercell of the primitive cell): band structure along seekpath's path, DOS
   and heat capacity, mean ± spread over members; the same from the exact EMT
   Hessian for comparison. The members are spread ``α`` times wider about
   their mean (:func:`mldiff.calibration.scale_members`), so every error bar is
   calibrated. At X and L each mode is compared with the exact frequency: it
   *agrees* if ``|mean − exact| ≤ 2 σ`` (σ the calibrated spread; the raw one
   is reported beside it).
5. **Output** in ``--out``: ``quickstart.png`` (bands, DOS, heat capacity),
   ``summary.json``, ``data.extxyz`` and the ensemble checkpoint (a rerun reuses
   the data and resumes the training).

``--fast`` runs a one-minute version (fewer structures, a tiny model, few
epochs, coarse meshes) whose numbers show the pipeline, not the accuracy.
"""

import os
import time

import numpy as np

from mldiff.cli import _common
from mldiff.errors import ConfigError

# Settings of the full and the --fast run.
FULL = dict(
    n_rattled=80,
    n_strained=60,
    n_md=60,
    members=4,
    epochs=40,
    model_config=dict(
        num_layers=2,
        features=8,
        l_max=1,
        radial_mlp=[16, 16],
        cutoff=4.5,
        num_basis=8,
    ),
    band_points=31,
    dos_mesh=(12, 12, 12),
)
FAST = dict(
    n_rattled=16,
    n_strained=12,
    n_md=12,
    members=2,
    epochs=6,
    model_config=dict(
        num_layers=1,
        features=4,
        l_max=1,
        radial_mlp=[8],
        cutoff=4.0,
        num_basis=6,
    ),
    band_points=11,
    dos_mesh=(6, 6, 6),
)
TEMPERATURES_K = np.arange(10.0, 801.0, 10.0)
AGREE_SIGMAS = 2.0  # a mode agrees with EMT within this many committee σ


def register(sub) -> None:
    """Add the subcommand."""
    p = sub.add_parser(
        "quickstart",
        help="learn Cu from EMT data, ensemble phonons with error bars vs exact EMT",
    )
    _common.add_output_argument(
        p, "--out", default="mldiff-quickstart", help="output folder"
    )
    p.add_argument("--fast", action="store_true", help="one-minute version")
    p.add_argument("--members", type=_common.positive_int, help="ensemble size")
    p.add_argument("--epochs", type=_common.positive_int, help="training epochs")
    p.add_argument("--seed", type=int, default=0)
    p.set_defaults(run=run)


def _step(title: str) -> float:
    print(f"\n== {title}", flush=True)
    return time.perf_counter()


def equilibrium_cell(potential, params_fn=None):
    """The fcc Cu primitive cell at the potential's zero-pressure lattice constant."""
    from ase.build import bulk

    from mldiff import md
    from mldiff.structure import Structure

    s = Structure.from_ase(bulk("Cu", "fcc", a=3.6))
    params = potential.init(None, s) if params_fn is None else params_fn(s)
    relaxed = md.relax(potential, params, s, relax_cell=True, fmax=1e-6, smax=1e-8)
    return relaxed.structure


def reference_data(settings: dict, a0: float, seed: int, path: str) -> list:
    """EMT-labeled Cu configurations (read from ``path`` when it exists)."""
    from ase.build import bulk
    from ase.calculators.emt import EMT

    from mldiff.data import generate, read_extxyz

    if os.path.exists(path):
        return read_extxyz(path)
    base = bulk("Cu", "fcc", a=a0, cubic=True).repeat((2, 2, 2))
    n_md = settings["n_md"]
    return generate(
        base,
        EMT(),
        n_rattled=settings["n_rattled"],
        rattle_stdev=0.08,
        n_strained=settings["n_strained"],
        max_strain=0.03,
        strain_rattle_stdev=0.05,
        md_temperatures_K=(300.0, 600.0, 900.0),
        n_per_temperature=n_md // 3,
        md_interval=10,
        seed=seed,
        progress=True,
        path=path,
    )


def phonon_comparison(unitcell, potential, params, settings, scale=1.0) -> dict:
    """Ensemble and exact-EMT phonons: bands, DOS, heat capacity, X and L.

    The members' bands, DOS and heat capacities are spread ``scale`` times
    wider about their mean (the committee's calibrated force scale).
    """
    import jax

    from mldiff import ensemble, phonons, potentials
    from mldiff.calibration import scale_members
    from mldiff.phonons import bands, dos, thermal

    sc = (3, 3, 3)
    params64 = jax.tree.map(lambda x: np.asarray(x, np.float64), params)
    ph_members = ensemble.ensemble_phonons(potential, params64, unitcell, sc)
    emt = potentials.get("emt")
    ph_exact = phonons.run(emt, emt.init(None, unitcell), unitcell, sc)
    path = bands.band_path(ph_exact.primitive, npoints=settings["band_points"])
    exact_bands = bands.band_structure(ph_exact, path)
    member_freqs = np.asarray(
        ensemble.committee_frequencies(ph_members, path.qpoints)
    )  # [K, k, 3], THz
    k_members = member_freqs.shape[0]
    fcs = np.asarray(ph_members.force_constants)

    def member(k):
        return ph_members._replace(force_constants=fcs[k])

    points = dos.frequency_points(exact_bands["frequencies_thz"], 0.15, num=161)
    mesh = settings["dos_mesh"]
    dos_members = np.stack(
        [
            dos.mesh_dos(member(k), mesh, sigma_thz=0.15, points_thz=points)["states"]
            for k in range(k_members)
        ]
    )
    dos_exact = dos.mesh_dos(ph_exact, mesh, sigma_thz=0.15, points_thz=points)
    cv_members = np.stack(
        [
            thermal.mesh_thermal_properties(member(k), mesh, TEMPERATURES_K)[
                "heat_capacity_j_k_mol"
            ]
            for k in range(k_members)
        ]
    )
    cv_exact = thermal.mesh_thermal_properties(ph_exact, mesh, TEMPERATURES_K)[
        "heat_capacity_j_k_mol"
    ]
    special = {}
    labels = {"X": None, "L": None}
    for lab in labels:
        if lab not in path.points:
            raise ConfigError(f"seekpath's fcc path has no point {lab}")
        q = np.asarray(path.points[lab])[None]
        f_m = np.asarray(ensemble.committee_frequencies(ph_members, q))[:, 0]
        f_x = np.asarray(phonons.frequencies(ph_exact, q))[0]
        mean, raw = f_m.mean(0), f_m.std(0)
        std = scale * raw
        dev = np.abs(mean - f_x)
        special[lab] = {
            "exact_thz": f_x.tolist(),
            "mean_thz": mean.tolist(),
            "std_thz": std.tolist(),
            "std_uncalibrated_thz": raw.tolist(),
            "abs_error_thz": dev.tolist(),
            "within_2_sigma": (dev <= AGREE_SIGMAS * std).tolist(),
            "within_2_sigma_uncalibrated": (dev <= AGREE_SIGMAS * raw).tolist(),
        }
    return {
        "path": path,
        "exact_bands": exact_bands,
        "member_bands": scale_members(member_freqs, scale),
        "dos_points": points,
        "dos_members": scale_members(dos_members, scale),
        "dos_exact": dos_exact["states"],
        "cv_members": scale_members(cv_members, scale),
        "cv_exact": np.asarray(cv_exact),
        "special_points": special,
    }


def figure(result: dict, path: str) -> None:
    """Bands, DOS and heat capacity: ensemble mean ± σ against exact EMT."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, (ax_b, ax_d, ax_c) = plt.subplots(
        1, 3, figsize=(12, 4), gridspec_kw={"width_ratios": [2.2, 1, 1.4]}
    )
    x = result["exact_bands"]["distances"]
    mean = result["member_bands"].mean(0)
    std = result["member_bands"].std(0)
    for b in range(mean.shape[1]):
        ax_b.fill_between(
            x,
            mean[:, b] - 2 * std[:, b],
            mean[:, b] + 2 * std[:, b],
            color="C0",
            alpha=0.25,
            lw=0,
        )
        label = "ensemble mean ± 2σ (calibrated)" if b == 0 else None
        ax_b.plot(x, mean[:, b], "C0", lw=1.2, label=label)
        ax_b.plot(
            x,
            result["exact_bands"]["frequencies_thz"][:, b],
            "k--",
            lw=1,
            label="exact EMT" if b == 0 else None,
        )
    p = result["path"]
    ticks = [x[i * p.npoints] for i in range(len(p.segments))] + [x[-1]]
    names = [p.segments[0][0]] + [
        b
        if i + 1 == len(p.segments) or p.segments[i + 1][0] == b
        else f"{b}|{p.segments[i + 1][0]}"
        for i, (_, b) in enumerate(p.segments)
    ]
    ax_b.set_xticks(ticks, [n.replace("GAMMA", "Γ") for n in names])
    for t in ticks:
        ax_b.axvline(t, color="0.8", lw=0.5)
    ax_b.set_xlim(x[0], x[-1])
    ax_b.set_ylabel("frequency (THz)")
    ax_b.legend(loc="lower right", fontsize=8)
    f = result["dos_points"]
    dm, ds = result["dos_members"].mean(0), result["dos_members"].std(0)
    ax_d.fill_betweenx(f, dm - 2 * ds, dm + 2 * ds, color="C0", alpha=0.25, lw=0)
    ax_d.plot(dm, f, "C0", lw=1.2)
    ax_d.plot(result["dos_exact"], f, "k--", lw=1)
    ax_d.set_xlabel("DOS (states/THz)")
    ax_d.set_ylim(ax_b.get_ylim())
    cm, cs = result["cv_members"].mean(0), result["cv_members"].std(0)
    ax_c.fill_between(TEMPERATURES_K, cm - 2 * cs, cm + 2 * cs, color="C0", alpha=0.25)
    ax_c.plot(TEMPERATURES_K, cm, "C0", lw=1.2, label="ensemble")
    ax_c.plot(TEMPERATURES_K, result["cv_exact"], "k--", lw=1, label="exact EMT")
    ax_c.set_xlabel("temperature (K)")
    ax_c.set_ylabel("C_V (J/K/mol)")
    ax_c.legend(fontsize=8)
    fig.suptitle("fcc Cu: ensemble of learned potentials vs exact EMT")
    fig.tight_layout()
    fig.savefig(path, dpi=130)
    plt.close(fig)


def run(args) -> int:
    """Run the whole job and print the summary table."""
    import jax

    from mldiff import potentials
    from mldiff.active import committee_errors
    from mldiff.data import split_items
    from mldiff.ensemble import train_ensemble
    from mldiff.io.files import write_json
    from mldiff.training import TrainConfig

    settings = dict(FAST if args.fast else FULL)
    if args.members is not None:
        settings["members"] = args.members
    if args.epochs is not None:
        settings["epochs"] = args.epochs
    if settings["members"] < 2:
        raise ConfigError("--members must be at least 2 for error bars")
    out = os.path.abspath(args.out)
    os.makedirs(out, exist_ok=True)
    t_all = time.perf_counter()
    times = {}

    t = _step("1/5 reference: EMT equilibrium of fcc Cu")
    emt = potentials.get("emt")
    unitcell = equilibrium_cell(emt)
    a0 = float(np.linalg.norm(np.asarray(unitcell.cell)[0]) * np.sqrt(2.0))
    print(f"EMT lattice constant a0 = {a0:.4f} Å")
    t = _step("labeling Cu configurations with ASE's EMT (stand-in for DFT)")
    items = reference_data(settings, a0, args.seed, os.path.join(out, "data.extxyz"))
    train_items, val_items, test_items = split_items(
        items, (0.8, 0.1, 0.1), seed=args.seed
    )
    print(
        f"{len(items)} structures of 32 atoms: {len(train_items)} train, "
        f"{len(val_items)} validation, {len(test_items)} test"
    )
    times["data_s"] = time.perf_counter() - t

    t = _step(
        f"2/5 training {settings['members']} NequIP-style potentials in one "
        "vmapped program"
    )
    config = TrainConfig(
        model="nequip",
        model_config=settings["model_config"],
        epochs=settings["epochs"],
        batch_size=4,
        learning_rate=1e-2,
        warmup_epochs=1,
        energy_weight=10.0,
        forces_weight=1.0,
        patience=0,
        n_buckets=1,
        seed=args.seed,
    )
    result = train_ensemble(
        config,
        settings["members"],
        train_items,
        val_items,
        os.path.join(out, "ensemble"),
        progress=True,
    )
    potential, params = result.ensemble
    calibration = result.calibration
    scale = calibration.forces_scale if calibration is not None else 1.0
    print(f"validation-calibrated force spread: σ × {scale:.2f}")
    times["training_s"] = time.perf_counter() - t

    t = _step("3/5 test errors of the committee mean")
    errors = committee_errors(potential, params, test_items)
    times["test_s"] = time.perf_counter() - t

    t = _step("4/5 phonons: every member (one vmapped Hessian) and exact EMT")
    ph = phonon_comparison(unitcell, potential, params, settings, scale)
    times["phonons_s"] = time.perf_counter() - t

    t = _step("5/5 figure and summary")
    figure(ph, os.path.join(out, "quickstart.png"))
    special = ph["special_points"]
    agree = all(all(v["within_2_sigma"]) for v in special.values())
    agree_raw = all(all(v["within_2_sigma_uncalibrated"]) for v in special.values())
    i300 = int(np.argmin(np.abs(TEMPERATURES_K - 300.0)))
    summary = {
        "system": "fcc Cu, EMT reference (ASE)",
        "lattice_constant_angstrom": a0,
        "structures": {
            "train": len(train_items),
            "validation": len(val_items),
            "test": len(test_items),
        },
        "members": settings["members"],
        "model_config": settings["model_config"],
        "epochs": settings["epochs"],
        "test_errors": errors,
        "calibration": {
            "forces_scale": scale,
            "energy_scale": calibration.energy_scale if calibration else 1.0,
            "method": calibration.method if calibration else None,
        },
        "phonons_at": special,
        "phonons_agree_within_2_sigma": agree,
        "phonons_agree_within_2_sigma_uncalibrated": agree_raw,
        "heat_capacity_300k_j_k_mol": {
            "mean": float(ph["cv_members"].mean(0)[i300]),
            "std": float(ph["cv_members"].std(0)[i300]),
            "exact": float(ph["cv_exact"][i300]),
        },
        "fast": bool(args.fast),
        "jax_backend": jax.default_backend(),
    }
    times["total_s"] = time.perf_counter() - t_all
    summary["wall_times_s"] = {k: round(v, 1) for k, v in times.items()}
    write_json(os.path.join(out, "summary.json"), summary)
    print_summary(summary, out)
    return 0


def print_summary(summary: dict, out: str) -> None:
    """The final table."""
    e = summary["test_errors"]
    c = summary["heat_capacity_300k_j_k_mol"]
    print("\n" + "=" * 64)
    print(
        f"mldiff quickstart — {summary['system']}"
        + ("  [--fast: pipeline demo, not accuracy]" if summary["fast"] else "")
    )
    print("-" * 64)
    print(f"{'test energy MAE':34s} {e['energy_mae_mev_per_atom']:9.2f} meV/atom")
    print(f"{'test force MAE':34s} {e['forces_mae_mev_per_angstrom']:9.2f} meV/Å")
    print(
        f"{'C_V(300 K) ensemble vs exact':34s} {c['mean']:7.3f} ± {c['std']:.3f}"
        f" vs {c['exact']:.3f} J/K/mol"
    )
    print(
        f"{'spread calibration (validation)':34s} σ × "
        f"{summary['calibration']['forces_scale']:.2f}"
    )
    for lab, v in summary["phonons_at"].items():
        rows = zip(
            v["mean_thz"],
            v["std_thz"],
            v["exact_thz"],
            v["within_2_sigma"],
            strict=True,
        )
        for b, (m, s, x, ok) in enumerate(rows):
            verdict = "agrees" if ok else f"off by {abs(m - x) / max(s, 1e-12):.1f} σ"
            print(
                f"  {lab} mode {b}: {m:6.3f} ± {s:5.3f} THz  exact {x:6.3f}  {verdict}"
            )
    print("-" * 64)
    if summary["phonons_agree_within_2_sigma"]:
        print(
            "Phonons at X and L agree with exact EMT within 2σ of the ensemble "
            "(calibrated σ)."
        )
    else:
        print(
            "Phonons at X and L do NOT all agree with exact EMT within 2σ "
            "(calibrated σ; see the lines above for by how much)."
        )
    print(
        f"wall time {summary['wall_times_s']['total_s']:.0f} s; "
        f"figure and summary.json in {out}"
    )
