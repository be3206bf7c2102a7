"""Training support: synthetic documents, datasets, training loops and evaluation."""
