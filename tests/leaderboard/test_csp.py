"""The Content-Security-Policy header on every kind of response (the pages under it are
checked in a real browser: tests/leaderboard/browser/test_csp.py)."""

from __future__ import annotations

import pytest

from leaderboard.board.csp import HEADER, REPORT_ONLY_HEADER, policy
from tests.leaderboard.factories import EvaluationFactory

pytestmark = pytest.mark.django_db


def test_json_csv_and_error_responses_carry_the_policy_each_with_its_own_nonce(client):
    EvaluationFactory()
    answers = [
        client.get("/api/tasks/"),
        client.get("/api/tasks/in-hospital-mortality/leaderboard/?format=csv"),
        client.get("/api/submissions/abcdefghijkm/"),
        client.get("/no-such-page/"),
        client.get("/admin/login/"),
    ]
    assert [r.status_code for r in answers] == [200, 200, 404, 404, 200]
    policies = [r[HEADER] for r in answers]
    assert all(p.startswith("default-src 'self'; script-src 'self' 'nonce-") for p in policies)
    assert all("object-src 'none'" in p and "frame-ancestors 'none'" in p for p in policies)
    nonces = {p.split("'nonce-")[1].split("'")[0] for p in policies}
    assert len(nonces) == len(answers)


def test_a_page_gets_the_nonce_of_its_own_header(client):
    EvaluationFactory()
    r = client.get("/tasks/in-hospital-mortality/")
    nonce = r[HEADER].split("'nonce-")[1].split("'")[0]
    assert f'<style nonce="{nonce}" id="plotly.js-style-global">' in r.content.decode()


def test_report_only_mode_sends_the_same_policy_without_blocking(client, settings):
    settings.CSP_REPORT_ONLY = True
    r = client.get("/metrics/")
    assert HEADER not in r and "script-src 'self' 'nonce-" in r[REPORT_ONLY_HEADER]


def test_the_api_docs_need_nothing_beyond_the_policy(client):
    """Swagger UI runs under the plain policy; ReDoc, whose side menu loads Redocly's logo
    from Redocly's server, is not offered and its old address leads to Swagger UI."""
    swagger = client.get("/api/docs/")[HEADER]
    assert swagger == policy(swagger.split("'nonce-")[1].split("'")[0])
    assert "unsafe-inline" not in swagger and "https:" not in swagger
    redoc = client.get("/api/redoc/")
    assert redoc.status_code == 301 and redoc["Location"] == "/api/docs/"
