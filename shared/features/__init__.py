"""Session and customer features: one implementation for online scoring and for training."""
