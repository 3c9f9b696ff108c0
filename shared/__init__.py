"""proact's internal package: the event contract, settings, telemetry and storage shared by every service."""
