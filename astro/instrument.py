"""The DSA-110 instrument model: band, time, polarisations, sensitivity and site.

Every number here comes from the DSA-110 project's own documents (see ``../shared/README.md``).
Other modules import these constants instead of repeating them, so the simulator, the watcher's
checks and the converter agree on what a subband file should look like.
"""

from __future__ import annotations

import numpy as np
from astropy import units as u
from astropy.coordinates import EarthLocation

#: Number of subband files per observation group.
N_SUBBANDS = 16
#: Channels per subband file (the default; tests use fewer, wider channels).
N_CHANNELS_PER_SUBBAND = 48
#: Channel width in Hz at full resolution.
CHANNEL_WIDTH_HZ = 244_140.625
#: Bandwidth of one subband in Hz (48 x 244.140625 kHz = 11.71875 MHz).
SUBBAND_WIDTH_HZ = N_CHANNELS_PER_SUBBAND * CHANNEL_WIDTH_HZ
#: Lower and upper edge of the band in Hz.
BAND_LOW_HZ = 1311.25e6
BAND_HIGH_HZ = 1498.75e6
#: Integrations per file group and their length in seconds (~5 minute drift-scan tile).
N_INTEGRATIONS = 24
INTEGRATION_TIME_S = 12.884902
TILE_DURATION_S = N_INTEGRATIONS * INTEGRATION_TIME_S
#: Polarisations, as AIPS/pyuvdata codes (XX = -5, YY = -6).
POLARIZATIONS = ("xx", "yy")
POLARIZATION_CODES = (-5, -6)
#: System-equivalent flux density per antenna, Jy.
SEFD_JY = 6500.0
#: Dish diameter in metres.
DISH_DIAMETER_M = 4.65
#: Number of active (correlated) antennas.
N_ACTIVE_ANTENNAS = 96
#: Group-timestamp tolerance used to gather subbands into one group.
GROUP_TOLERANCE_S = 60.0

#: OVRO, the site (geodetic).
SITE_LAT_DEG = 37.2339
SITE_LON_DEG = -118.2825
SITE_HEIGHT_M = 1188.0
TELESCOPE_NAME = "DSA-110"


def site_location() -> EarthLocation:
    """The telescope reference location (OVRO), as an astropy EarthLocation."""
    return EarthLocation.from_geodetic(
        lon=SITE_LON_DEG * u.deg, lat=SITE_LAT_DEG * u.deg, height=SITE_HEIGHT_M * u.m
    )


def subband_edges_hz(subband: int) -> tuple[float, float]:
    """(low, high) frequency edges of subband ``subband``; sb00 is the highest."""
    if not 0 <= subband < N_SUBBANDS:
        raise ValueError(f"subband index {subband} outside 0..{N_SUBBANDS - 1}")
    high = BAND_HIGH_HZ - subband * SUBBAND_WIDTH_HZ
    return high - SUBBAND_WIDTH_HZ, high


def subband_frequencies_hz(subband: int, n_channels: int = N_CHANNELS_PER_SUBBAND) -> np.ndarray:
    """Channel-centre frequencies of one subband, in the order the correlator writes them.

    The DSA-110 correlator writes each subband's channels in *descending* frequency, as the real
    files do; the converter sorts them ascending. With fewer than 48 channels the subband keeps its
    full 11.72 MHz and the channels get wider, so tiny test files still span the whole band.
    """
    if n_channels < 1:
        raise ValueError("n_channels must be >= 1")
    low, high = subband_edges_hz(subband)
    width = (high - low) / n_channels
    return high - width * (np.arange(n_channels) + 0.5)


def channel_width_hz(n_channels: int = N_CHANNELS_PER_SUBBAND) -> float:
    """Width of one channel when a subband is split into ``n_channels``."""
    return SUBBAND_WIDTH_HZ / n_channels


def band_frequencies_hz(n_channels: int = N_CHANNELS_PER_SUBBAND) -> np.ndarray:
    """All channel centres of the band, ascending (the order of a converted Measurement Set)."""
    return np.sort(np.concatenate([subband_frequencies_hz(s, n_channels) for s in range(N_SUBBANDS)]))


def thermal_sigma_jy(channel_width: float, integration_time: float, sefd: float = SEFD_JY) -> float:
    """Noise per real (or imaginary) part of one cross-correlation visibility, one polarisation.

    σ = SEFD / sqrt(2 Δν τ), the radiometer equation for a single baseline and polarisation.
    """
    return float(sefd / np.sqrt(2.0 * channel_width * integration_time))
