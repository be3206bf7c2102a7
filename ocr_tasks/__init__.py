"""ocr-pipeline: CRAFT text detection and deep-text-recognition-benchmark recognition.

Importing this package loads nothing heavy (no torch, no celery): the web app and
Flower import it too.
"""

__version__ = "0.1.0"

__all__ = ["__version__"]
