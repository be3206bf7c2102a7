"""Flask web app (HTTP API and upload form). Never imports torch."""
