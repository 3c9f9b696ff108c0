"""Model loading, fast scoring, evaluation and the versioned model registry."""
