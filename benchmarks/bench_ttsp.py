"""Time–temperature superposition: mldiff vs the ``mastercurves`` package.

Run by hand: ``python benchmarks/bench_ttsp.py``. Both superpose the same
synthetic thermorheologically simple data (generalized Maxwell, 20 modes, WLF
C1 = 17.44, C2 = 51.6 K, 8 temperatures, 0.1–100 rad/s, 2 % noise) using G′
(mastercurves superposes one quantity; mldiff is timed on the same G′ and also
on G′ + G″). Prints one JSON line per case: max |log10 aT - truth|, seconds
(mldiff after compilation, mean of ``repeat`` runs) and the time ratio.
"""

import json
import time
import warnings

import jax

jax.config.update("jax_enable_x64", True)

import numpy as np  # noqa: E402

from mldiff.ttsp import superposition  # noqa: E402
from mldiff.ttsp.data import wlf_maxwell_data, wlf_shift  # noqa: E402


def mldiff_shifts(data, quantities):
    """log10 aT from mldiff (reference 373 K)."""
    sf = superposition.shift_factors(data, 373.0, quantities=quantities)
    return sf.log10_aT


def mastercurves_shifts(data):
    """log10 aT from mastercurves (pairwise GP superposition of G′)."""
    from mastercurves import MasterCurve
    from mastercurves.transforms import Multiply

    temps = data.temperatures_k()
    xs, ys = [], []
    for t in temps:  # natural logs, as mastercurves' log-scale Multiply expects
        x, y = data.log_curve("storage_modulus_pa", t)
        xs.append(x * np.log(10.0))
        ys.append(y * np.log(10.0))
    mc = MasterCurve()
    mc.add_data(xs, ys, [float(t) for t in temps])
    mc.add_htransform(Multiply(bounds=(1e-3, 1e2), scale="log"))
    mc.superpose()
    mc.change_ref(373.0)
    # mastercurves' a multiplies the frequency: the same as our aT
    return np.log10(np.asarray(mc.hparams[0], dtype=np.float64))


def seconds(fn, *args, repeat=3):
    """Mean seconds per call after one warm-up call, and the last result."""
    fn(*args)  # compile and warm up
    t0 = time.perf_counter()
    for _ in range(repeat):
        out = fn(*args)
    return (time.perf_counter() - t0) / repeat, out


def main():
    """Print one JSON line per case."""
    warnings.filterwarnings("ignore", module="sklearn")  # GP bound warnings
    data = wlf_maxwell_data(noise=0.02, seed=0)
    truth = wlf_shift(data.temperatures_k(), 17.44, 51.6, 373.0)
    t_peer, peer = seconds(mastercurves_shifts, data, repeat=1)
    peer_err = float(np.max(np.abs(peer - truth)))
    for quantities in (
        ("storage_modulus_pa",),
        ("storage_modulus_pa", "loss_modulus_pa"),
    ):
        t_ours, ours = seconds(mldiff_shifts, data, quantities)
        print(
            json.dumps(
                {
                    "case": "WLF-Maxwell-8T-"
                    + "+".join(q.split("_")[0] for q in quantities),
                    "device": jax.devices()[0].device_kind,
                    "jax": jax.__version__,
                    "ours_max_abs_err": float(np.max(np.abs(ours - truth))),
                    "mastercurves_max_abs_err": peer_err,
                    "ours_s": t_ours,
                    "mastercurves_s": t_peer,
                    "speedup": t_peer / t_ours,
                }
            )
        )


if __name__ == "__main__":
    main()
