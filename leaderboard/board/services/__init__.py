"""Writes: every change to the platform's data goes through a function here."""
