"""The dispatcher: turns requested actions into delivered messages, each exactly once."""
