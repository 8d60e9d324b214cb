"""Content-Security-Policy: every response says that the page may run and style itself only
from the site's own files, plus inline elements that carry the request's nonce.

The policy (docs/platform.md, "Content-Security-Policy"):

- scripts: the site's own files, and an inline ``<script>`` only with the request's nonce
  (``{{ csp_nonce }}`` in templates, from :func:`nonce`); no ``eval``;
- styles: the site's own files, and an inline ``<style>`` only with the nonce. Style
  *properties* set from scripts through the CSSOM (Plotly draws that way) are not governed by
  CSP; the ``<style>`` element Plotly fills with its own rules is put in the page with the
  nonce beforehand (``board/plotly_style.html``), so no ``'unsafe-inline'`` is needed;
- images from the site and ``data:`` URIs (Swagger UI's icons), fonts and connections
  (``fetch``) to the site only; no plugins, no ``<base>`` elsewhere, forms posted only to the
  site, and no page may be framed.

``CSP_REPORT_ONLY`` sends the same policy as ``Content-Security-Policy-Report-Only``
(violations are reported in the browser's console but not blocked), for trying a change.
"""

from __future__ import annotations

import secrets
from collections.abc import Callable

from django.conf import settings
from django.http import HttpRequest, HttpResponse

HEADER = "Content-Security-Policy"
REPORT_ONLY_HEADER = "Content-Security-Policy-Report-Only"


def policy(nonce: str) -> str:
    """The policy sent with a response whose inline elements carry ``nonce``."""
    directives = {
        "default-src": "'self'",
        "script-src": f"'self' 'nonce-{nonce}'",
        "style-src": f"'self' 'nonce-{nonce}'",
        "img-src": "'self' data:",
        "font-src": "'self'",
        "connect-src": "'self'",
        "object-src": "'none'",
        "base-uri": "'self'",
        "form-action": "'self'",
        "frame-ancestors": "'none'",
    }
    return "; ".join(f"{name} {value}" for name, value in directives.items())


class ContentSecurityPolicyMiddleware:
    """Makes a fresh nonce for each request (``request.csp_nonce``) and sends the policy with
    it on the response, unless a view has set a policy of its own."""

    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        nonce = secrets.token_urlsafe(18)
        # An attribute of our own on the request, read by the templates' context processor.
        request.csp_nonce = nonce  # type: ignore[attr-defined]
        response = self.get_response(request)
        header = REPORT_ONLY_HEADER if settings.CSP_REPORT_ONLY else HEADER
        if HEADER not in response and REPORT_ONLY_HEADER not in response:
            response[header] = policy(nonce)
        return response


def nonce(request: HttpRequest) -> dict[str, str]:
    """Template context: ``csp_nonce``, the nonce that an inline ``<script>`` or ``<style>``
    must carry (``<script nonce="{{ csp_nonce }}">``)."""
    return {"csp_nonce": getattr(request, "csp_nonce", "")}
