"""proact services: one package per process."""
