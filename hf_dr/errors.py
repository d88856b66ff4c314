"""Errors raised by hf_dr.

Every error subclasses :class:`HfDrError` *and* the built-in exception a caller would expect, so both
``except HfDrError`` and ``except ValueError`` (or ``KeyError``, ``FileNotFoundError``...) catch it.
"""

from __future__ import annotations


class HfDrError(Exception):
    """Base class of every error raised by hf_dr."""


class UnknownPolicyError(HfDrError, ValueError):
    """An augmentation policy name that is not registered."""


class ParamsMismatchError(HfDrError, ValueError):
    """Augmentation parameters that do not match the policy asked to apply them."""


class RecomputedParamsError(ParamsMismatchError):
    """Seeded params drawn again at replay that disagree with the checksum the run stored."""


class MissingColumnError(HfDrError, KeyError):
    """A dataset lacks a column hf_dr needs (image, label, key or reinforcements)."""

    def __str__(self) -> str:  # KeyError would quote the message
        return str(self.args[0]) if self.args else ""


class ClassCountMismatchError(HfDrError, ValueError):
    """The number of classes of a model or teacher differs from the dataset's."""


class MissingSoftLabelsError(HfDrError, ValueError):
    """A loss or trainer was given hard labels where soft targets were expected."""


class InvalidConfigError(HfDrError, ValueError):
    """A configuration value out of range or of the wrong type."""


class DataMismatchError(HfDrError, ValueError):
    """A dataset whose rows differ from those that were reinforced (missing keys, changed content)."""


class CorruptShardError(HfDrError, OSError):
    """A reinforcement shard that is missing, truncated or whose checksum does not match the manifest."""


class IncompleteRunError(HfDrError, FileNotFoundError):
    """A reinforcement output folder whose run has not finished (no manifest, missing shards)."""


class ConfigConflictError(HfDrError, ValueError):
    """An output folder that was made with a different configuration than the one asked for."""


class TeacherError(HfDrError, ValueError):
    """A teacher that cannot be built or is not what it claims (e.g. an ensemble of identical members)."""


class HubNotFoundError(HfDrError, FileNotFoundError):
    """A Hub repo, revision or file that does not exist (or that the token cannot read)."""


class TrainerArgumentsError(HfDrError, ValueError):
    """``TrainingArguments`` that would silently break training on a ``set_transform`` dataset."""


class UnknownBuilderError(HfDrError, KeyError):
    """A builder name that is not registered (the message lists the valid names)."""

    def __str__(self) -> str:  # KeyError would quote the message
        return str(self.args[0]) if self.args else ""


class MissingTeacherError(TeacherError):
    """A recipe whose teacher must be fine-tuned first, run without a teacher spec."""


class WeightsNotFoundError(HfDrError, FileNotFoundError):
    """A teacher member's local weights file or directory does not exist."""


class RunLockedError(HfDrError, BlockingIOError):
    """An output folder that another reinforce run holds (its lock file names the holder)."""


class SourceNotFoundError(HfDrError, FileNotFoundError):
    """A dataset argument that is neither an existing local file or folder nor a dataset reachable on the Hub."""


class WeightsFileError(TeacherError):
    """A teacher weights file that cannot be read (truncated, not safetensors/PyTorch) or does not fit its model."""


class CorruptImageError(HfDrError, OSError):
    """An image that cannot be decoded or converted: truncated, damaged or missing, or in an unconvertible mode."""


class CalibrationError(HfDrError, ValueError):
    """A calibration split that cannot fit a teacher's temperature (too few wrong predictions)."""


class OutputWriteError(HfDrError, OSError):
    """A file that cannot be written: a full disk, an exceeded quota, or a folder that is read-only or not ours."""


class HubAuthError(HfDrError, PermissionError):
    """No Hub token, or one the Hub refuses (the message says how to log in)."""


class HubUnavailableError(HfDrError, ConnectionError):
    """The Hub kept failing transiently (429, 5xx, dropped connections) after the retries, or refused a request."""
