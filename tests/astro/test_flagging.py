"""RFI flagging: injected narrow-band and broadband RFI is found, clean data is left alone."""

from __future__ import annotations

import numpy as np

from astro.flagging import flag_fraction, flag_rfi


def _noise(ntime=24, nbl=30, nchan=64, npol=2, seed=0):
    rng = np.random.default_rng(seed)
    v = (rng.standard_normal((ntime, nbl, nchan, npol)) + 1j * rng.standard_normal((ntime, nbl, nchan, npol)))
    v += 5.0  # a constant source
    a1 = np.repeat(np.arange(6), 5)[:nbl]
    a2 = a1 + 1 + np.tile(np.arange(5), 6)[:nbl]
    return v.astype(np.complex64), a1, a2


def test_clean_data_mostly_unflagged():
    v, a1, a2 = _noise()
    f = flag_rfi(v, np.zeros(v.shape, bool), a1, a2)
    assert flag_fraction(f, a1, a2) < 0.01


def test_injected_rfi_is_flagged():
    v, a1, a2 = _noise(seed=1)
    truth = np.zeros(v.shape, bool)
    v[:, :, 17, :] += 30.0  # persistent narrow-band line, all baselines
    truth[:, :, 17, :] = True
    v[5, :, 30:50, :] += 4.0 * np.exp(1j * 0.3)  # weak broadband burst: needs SumThreshold
    truth[5, :, 30:50, :] = True
    v[12, 3, 8, 0] += 60.0  # single spike
    truth[12, 3, 8, 0] = True
    prior = np.zeros(v.shape, bool)
    prior[0, 0, 0, 0] = True
    f = flag_rfi(v, prior, a1, a2)
    assert f[0, 0, 0, 0]  # existing flags are kept
    assert f[truth].mean() > 0.95
    assert f[~truth].mean() < 0.03


def test_autocorrelations_untouched():
    v, a1, a2 = _noise(nbl=10)
    a2 = a2.copy()
    a2[0] = a1[0]
    v[:, 0, 3, :] += 1000
    f = flag_rfi(v, np.zeros(v.shape, bool), a1, a2)
    assert not f[:, 0].any()


def test_a_sample_flagged_on_most_baselines_is_flagged_on_all():
    """The broadband extension: a (time, channel) flagged on more than half of the cross-correlations
    is flagged on every one of them; the autocorrelations are neither counted nor flagged."""
    v, a1, a2 = _noise(nbl=12, seed=3)
    a2 = a2.copy()
    a2[0] = a1[0]  # baseline 0 is an autocorrelation
    prior = np.zeros(v.shape, bool)
    prior[7, 1:8, 20, :] = True  # 7 of the 11 cross-correlations
    prior[9, 1:6, 40, :] = True  # 5 of 11: not more than half
    prior[9, 0, 40, :] = True  # with the autocorrelation 6 of 12, still not more than half of the crosses
    f = flag_rfi(v, prior, a1, a2, broadband_fraction=0.5)
    assert f[7, 1:, 20, :].all()
    assert not f[7, 0, 20, :].any()
    assert not f[9, 6:, 40, :].any()
