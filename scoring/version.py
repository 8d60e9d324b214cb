"""Version of the scorer; stored with every score. Bump it when a metric, the bootstrap or
the report format changes, so the platform knows which evaluations are current."""

SCORER_VERSION = "1.0.0"
