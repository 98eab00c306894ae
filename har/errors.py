"""The exception hierarchy. One small family per layer; the CLI turns any HarError into a
one-line message and a non-zero exit (set HAR_DEBUG=1 or pass --debug to see the traceback)."""

from __future__ import annotations


class HarError(Exception):
    """Base class of every error har reports to a user."""

    exit_code = 1


# --- data: recordings, formats, windowing -------------------------------------------------
class DataError(HarError):
    """A recording or data set is missing, malformed or unusable."""


class RecordingFormatError(DataError):
    """A recording file does not follow the recording format."""


class PlausibilityError(DataError):
    """Data that reads fine but is implausible (units, rate, timestamps, sidecar vs CSV); ``--force``
    accepts it as it is."""


class ImportFormatError(DataError):
    """An input file for `har import` is not in the format named."""


class CacheError(DataError):
    """The window cache cannot be built or read (disk full, unwritable directory)."""


# --- capture: ports, wire protocol, sources ---------------------------------------------
class CaptureError(HarError):
    """Capturing samples from a device or file failed."""


class PortError(CaptureError):
    """A serial port could not be opened or vanished."""


class ProtocolError(CaptureError):
    """The device does not speak the har wire protocol (or at the wrong baud rate)."""


# --- model: training, model directories -------------------------------------------------
class ModelError(HarError):
    """A model directory is missing, incomplete or inconsistent."""


class TrainingError(ModelError):
    """Training could not run (no data, one class, no test subjects, ...)."""


class DistributedError(TrainingError):
    """Multi-worker training (`har train --distributed`) could not run: TF_CONFIG, a lost worker."""


class TuneError(TrainingError):
    """A model search (`har tune`) could not run: unusable data, study database, budget."""


class MissingDependencyError(HarError):
    """An optional dependency (the `train` or `edge` extra) is not installed."""


# --- export and bundles -----------------------------------------------------------------
class ExportError(HarError):
    """TFLite conversion or verification failed."""


class BundleError(HarError):
    """A bundle is missing files, fails its checksums or is malformed."""


class DeployError(HarError):
    """Pushing a bundle to a device failed."""


# --- runtime ----------------------------------------------------------------------------
class RuntimeInferenceError(HarError):
    """The TFLite runtime could not be loaded or failed to run a model."""


class AdaptError(RuntimeInferenceError):
    """`har adapt` cannot run: unusable calibration, a bundle without the embedding output, ..."""


class ConfigError(HarError):
    """A configuration value or file is invalid (unknown key, bad type, out of range)."""


class SmoothingError(ConfigError):
    """A smoothing spec or setting (``--smooth``, ``--min-duration``, bundle metadata) is invalid."""


class OutputError(HarError):
    """An output for other programs (``--jsonl``, ``--csv``, ``--on-change``, ``--post``, ``--mqtt``) failed."""
