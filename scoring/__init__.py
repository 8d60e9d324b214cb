"""The scoring engine (public API re-exported once all parts are in)."""
