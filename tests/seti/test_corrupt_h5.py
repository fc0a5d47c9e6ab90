"""A corrupt ``.h5`` is bad input, whatever h5py raises for it (issue 15, found by bench/fuzz.py).

The 30-minute fuzz run found bit-flipped ``.h5`` uploads that h5py opens and then fails on with a
``KeyError`` or ``RuntimeError``: the searcher took them for service errors, retried each job five
times and failed it as an internal error, not charged. Reading the header must end in a
``ValueError`` (``FilterbankError``: the job fails at once with the reason) or succeed.
"""

from __future__ import annotations

from pathlib import Path

import h5py
import numpy as np

from actors.searcher.filterbank import FilterbankError, iter_coarse_channels, open_filterbank


def test_every_bit_flip_in_the_first_bytes_is_a_filterbank_error_or_readable(tmp_path: Path) -> None:
    good = tmp_path / "good.h5"
    with h5py.File(good, "w") as f:
        ds = f.create_dataset("data", data=np.ones((16, 1, 1024), dtype="<f4"))
        header = {"fch1": 1400.0, "foff": -0.0029, "nchans": 1024, "tsamp": 18.25, "tstart": 60000.0,
                  "source_name": "FUZZ", "nifs": 1, "nbits": 32, "telescope_id": 6}  # fmt: skip
        for k, v in header.items():
            ds.attrs[k] = v
    raw = good.read_bytes()
    bad = tmp_path / "bad.h5"
    corrupt = 0
    for i in range(256):
        for bit in (0, 7):
            flipped = bytearray(raw)
            flipped[i] ^= 1 << bit
            bad.write_bytes(bytes(flipped))
            try:
                info = open_filterbank(bad)
                for _ in iter_coarse_channels(info, 1024):
                    pass
            except FilterbankError:
                corrupt += 1
            except ValueError:  # e.g. a dtype h5py cannot map: the searcher fails the job with it too
                corrupt += 1
    assert corrupt > 0  # the flips did reach the structure (else this test tests nothing)
