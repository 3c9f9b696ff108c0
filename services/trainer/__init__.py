"""The trainer: a command-line job that trains, evaluates and registers the models."""
