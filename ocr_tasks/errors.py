"""Domain errors. Only the adapters (CLI, web) translate them into exit codes / HTTP codes."""

from __future__ import annotations

__all__ = [
    "OCRError",
    "ConfigError",
    "InvalidImage",
    "UnsupportedFormat",
    "ImageTooLarge",
    "ModelError",
    "UnknownModel",
    "WeightsNotFound",
    "WeightsMismatch",
    "ServiceError",
    "ServiceUnavailable",
    "Overloaded",
    "PageMissing",
    "DocumentStalled",
    "RecognitionFailed",
]


class OCRError(Exception):
    """Base class of every error this package raises on purpose."""


class ConfigError(OCRError, ValueError):
    """A setting (an ``OCR_*`` variable) has a value this package does not accept, or asks for a
    combination it cannot run."""


class InvalidImage(OCRError, ValueError):
    """The bytes are not an image we can read (corrupt, truncated, empty, zero-size)."""


class UnsupportedFormat(InvalidImage):
    """The file is a valid file of a kind we do not read (PDF, SVG, text, ...)."""


class ImageTooLarge(InvalidImage):
    """The image declares more pixels (or bytes) than the configured cap."""


class ModelError(OCRError):
    """A model cannot be built or its weights cannot be loaded."""


class UnknownModel(ModelError, ValueError):
    """The requested model name is not in the registry."""


class WeightsNotFound(ModelError, FileNotFoundError):
    """The weights file for a registered model is not on disk."""


class WeightsMismatch(ModelError, ValueError):
    """A weights file does not fit the architecture (missing/unexpected keys, wrong shapes)."""


class ServiceError(OCRError):
    """Base class of the queue service's errors (client, tasks, storage)."""


class ServiceUnavailable(ServiceError):
    """Redis (page store, result backend) or the broker cannot be reached; retry later."""


class Overloaded(ServiceUnavailable):
    """More documents wait for detection than ``OCR_MAX_BACKLOG``; retry later."""


class PageMissing(ServiceError):
    """The uploaded page is not in the page store: it expired (``OCR_PAGE_TTL``) or was never stored."""


class DocumentStalled(ServiceError):
    """A document made no progress for ``OCR_STALL_TIMEOUT`` seconds, even after being resent."""


class RecognitionFailed(ServiceError):
    """The recognizer raised, or returned a wrong number of results, for a batch of crops."""
