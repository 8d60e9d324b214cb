"""Reads: the queries behind the pages and the API."""
