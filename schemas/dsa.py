"""DSA-110 continuum pipeline events, in the order the data flows."""

from __future__ import annotations

from schemas.base import Event


class GroupUpdated(Event, frozen=True, tag="dsa.group.updated"):
    """The state of one observation group changed.

    It carries the whole group row, not a delta, so that a projection is one keyed upsert and a
    replayed or duplicated event cannot leave a read model half-updated.
    state: collecting | pending | in_progress | completed | failed
    """

    group_id: str
    state: str
    subbands_present: int
    expected_subbands: int = 16
    has_calibrator: bool = False
    files: list[str] = []
    missing_subbands: list[int] = []
    reason: str = ""
    #: when the group's first file was seen (seconds since the epoch): the collecting timeout runs from it
    first_seen: float = 0.0
    #: the calibrator transiting the tile, if any
    calibrator: str = ""
    #: the Measurement Set, once converted
    ms_path: str = ""


class SubbandRejected(Event, frozen=True, tag="dsa.subband.rejected"):
    """A file in the incoming directory was not accepted (unreadable, duplicate, late, bad shape).

    ``code``: ``not_hdf5``, ``not_uvh5``, ``wrong_shape``, ``incomplete`` (still not a whole file
    after the watcher's patience), ``empty``, ``duplicate``, ``late``. The file stays where it is;
    ``size_bytes`` and ``mtime_ns`` say which version of it was judged, so a watcher that restarts
    does not judge it again unless it changed.
    """

    path: str
    reason: str
    group_id: str = ""
    code: str = ""
    subband: int = -1
    size_bytes: int = -1
    mtime_ns: int = 0


class StreamingConfigured(Event, frozen=True, tag="dsa.streaming.configured"):
    """The streaming service's (the watcher's) configuration, as an operator or a start set it.

    The latest one is in force: every watcher and every edge read it from the stream.
    ``source``: ``api`` (``POST /api/streaming/config``) or ``startup`` (a watcher's own flags).
    """

    input_dir: str
    output_dir: str
    batch_size: int
    poll_interval: float
    source: str = "api"


class StreamingStateChanged(Event, frozen=True, tag="dsa.streaming.state"):
    """Ingestion started or stopped in a watcher (an operator command, or the actor starting/stopping).

    ``action``: started | stopped | restarted | actor_started | actor_stopped.
    ``started_at``: when ingestion (re)started in this instance (ISO 8601 Z), empty when stopped.
    """

    running: bool
    action: str
    instance: str
    pid: int
    host: str
    started_at: str = ""


class MeasurementSetWritten(Event, frozen=True, tag="dsa.ms.written"):
    """A group became a Measurement Set, or an MS moved on a stage (calibrated, imaged)."""

    path: str
    group_id: str
    mid_mjd: float
    field_name: str
    stage: str  # converted | calibrated | imaged
    status: str = "ok"
    has_calibrator: bool = False
    #: stage ``calibrated``: the calibration set directories (one, or two to interpolate between)
    #: the calibrator chose for this group; the imager applies exactly these
    calsets: list[str] = []

    def at_stage(
        self, stage: str, status: str = "ok", *, calsets: list[str] | None = None, producer: str = ""
    ) -> MeasurementSetWritten:
        """This MS moved on to `stage`: a new event (its own id and time) for the same group, in the
        same correlation (the group's id when the first event had none); `calsets` kept unless given."""
        return MeasurementSetWritten(
            path=self.path,
            group_id=self.group_id,
            mid_mjd=self.mid_mjd,
            field_name=self.field_name,
            stage=stage,
            status=status,
            has_calibrator=self.has_calibrator,
            calsets=list(self.calsets) if calsets is None else calsets,
            producer=producer,
            correlation_id=self.correlation_id or self.group_id,
        )


class CalibrationSetSolved(Event, frozen=True, tag="dsa.calibration.solved"):
    cal_group_id: str
    path: str
    created_at: str
    num_targets: int
    valid_from_mjd: float
    valid_to_mjd: float
    calibrator: str = ""


class ImageReady(Event, frozen=True, tag="dsa.image.ready"):
    path: str
    group_id: str
    mjd: float
    noise_jy: float
    bmaj_deg: float
    bmin_deg: float
    bpa_deg: float
    n_sources_5sigma: int
    ms_path: str = ""
    thumbnail_path: str = ""
    ra_deg: float = 0.0
    dec_deg: float = 0.0


class SourceMeasured(Event, frozen=True, tag="dsa.source.measured"):
    """Forced-photometry measurements of one image (one event per image, not per source).

    Besides the measurements (primary-beam corrected), every list holds, per source, its catalogue
    entry and its running statistics *after* this measurement, so that a read model is one keyed
    upsert per source and never recomputes anything (statistics that are undefined, such as the
    std of one epoch, are null). All lists are aligned with ``source_ids``.
    """

    image_path: str
    mjd: float
    source_ids: list[str]
    flux_jy: list[float]
    error_jy: list[float]
    snr: list[float]
    ra_deg: list[float] = []
    dec_deg: list[float] = []
    catalogue_flux_jy: list[float] = []
    spectral_index: list[float] = []
    n_obs: list[int] = []
    mean_flux_jy: list[float | None] = []
    std_flux_jy: list[float | None] = []
    chi2_nu: list[float | None] = []
    eta: list[float | None] = []
    v: list[float | None] = []
    sigma_deviation: list[float] = []
    #: the absolute-flux error (local rms: thermal noise, sidelobes, confusion); ``error_jy`` is the
    #: smaller epoch-to-epoch error that χ²ν, η, V and the ESE test use (actors/variability/errors.py)
    abs_error_jy: list[float] = []


class EseCandidateUpdated(Event, frozen=True, tag="dsa.ese.updated"):
    """An ESE candidate opened, was extended by a further deviant epoch, or changed status.

    Carries the whole candidate (``candidate_id`` is the variability actor's stable integer id,
    the ``id`` of seed 000), so a read model is one keyed upsert.
    """

    candidate_id: int
    source_id: str
    ra_deg: float
    dec_deg: float
    status: str
    first_detection_at: str
    last_detection_at: str
    max_sigma_dev: float
    baseline_flux_jy: float
    peak_flux_jy: float
    notes: str | None = None


class MosaicReady(Event, frozen=True, tag="dsa.mosaic.ready"):
    name: str
    path: str
    start_mjd: float
    end_mjd: float
    n_images: int
    n_sources: int
    noise_jy: float
    thumbnail_path: str = ""
    noise_path: str = ""
    job_id: str = ""
    kind: str = "hourly"  # hourly | request
    dec_min_deg: float | None = None
    dec_max_deg: float | None = None


class PipelineJobUpdated(Event, frozen=True, tag="dsa.job.updated"):
    """A control job (image, mosaic, ...) was created or changed state."""

    job_id: str
    job_type: str
    status: str  # pending | running | completed | failed
    created_at: str
    completed_at: str | None = None
    parameters: dict[str, object] = {}
    error: str = ""
    #: files the job wrote (an image job: its FITS images)
    outputs: list[str] = []
