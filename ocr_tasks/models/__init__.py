"""Models: registry, weights, CRAFT detectors and four-stage recognizers. No celery, no flask."""

__all__: list[str] = []
