"""The projector: copies the engine's changelog and decision log into MongoDB, behind the engine."""
