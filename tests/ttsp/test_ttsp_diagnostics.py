"""TTSP verdicts: the simple material passes, the two-process material fails."""


def test_simple_material_passes_every_diagnostic(simple_summary):
    assert simple_summary["ttsp_holds"] is True
    assert simple_summary["reasons"] == []
    assert set(simple_summary["diagnostics"]) == {
        "shift_agreement",
        "van_gurp_palmen",
        "overlap_misfit",
    }
    for test in simple_summary["diagnostics"].values():
        assert test["passed"] and test["statistic"] <= test["threshold"]


def test_complex_material_fails_for_the_right_reason(complex_summary):
    # two processes with different activation energies: G' and G'' are
    # dominated by different processes, so their shifts disagree and the
    # shift-free van Gurp-Palmen curves do not collapse
    tests = complex_summary["diagnostics"]
    assert complex_summary["ttsp_holds"] is False
    assert not tests["shift_agreement"]["passed"]
    assert not tests["van_gurp_palmen"]["passed"]
    # well beyond the threshold, not marginal
    assert (
        tests["shift_agreement"]["statistic"]
        > 5 * tests["shift_agreement"]["threshold"]
    )
    assert any("shift_agreement" in r for r in complex_summary["reasons"])
