"""Entries' public ids in addresses: the path converter ``<entry:...>`` and the redirect of
the entries' old integer addresses."""

from __future__ import annotations

from django.http import HttpRequest, HttpResponseRedirect
from django.urls import register_converter

from leaderboard.board.models import PUBLIC_ID_PATTERN


class EntryIdConverter:
    """An entry's public identifier (``Submission.public_id``); never an integer."""

    regex = PUBLIC_ID_PATTERN

    def to_python(self, value: str) -> str:
        return value

    def to_url(self, value: str) -> str:
        return value


register_converter(EntryIdConverter, "entry")


def legacy_redirect(request: HttpRequest, url: str) -> HttpResponseRedirect:
    """A redirect to ``url`` with the request's query string: 302 for a read, 307 (the
    method and body kept) for anything else."""
    query = request.META.get("QUERY_STRING", "")
    response = HttpResponseRedirect(f"{url}?{query}" if query else url)
    if request.method not in ("GET", "HEAD"):
        response.status_code = 307
    return response
