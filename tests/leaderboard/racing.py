"""Clients uploading at the same moment: the scaffolding of the concurrency tests."""

from __future__ import annotations

import threading
from typing import Any

from django.core.files.uploadedfile import SimpleUploadedFile
from django.db import connection
from rest_framework.test import APIClient

START_TIMEOUT = 30.0  # seconds the racers wait for each other
FINISH_TIMEOUT = 60.0  # seconds each racer has for its request


def race_uploads(tokens: list[str]) -> list[tuple[int, Any]]:
    """One thread per API token, each posting its own small prediction file for in-hospital
    mortality the moment all are ready (a barrier); the answers' status codes and bodies, in
    the order they came. A racer that raised fails the calling test with its exception."""
    barrier = threading.Barrier(len(tokens))
    results: list[tuple[int, Any]] = []
    errors: list[BaseException] = []

    def submit(i: int, token: str) -> None:
        try:
            client = APIClient()
            client.credentials(HTTP_AUTHORIZATION=f"Token {token}")
            data = {
                "task": "in-hospital-mortality",
                "method_name": f"racer {i}",
                "modalities": "ehr",
                "training_data": "train and validation splits only",
                "file": SimpleUploadedFile(f"p{i}.csv", f"stay_id,prediction\n1,0.{i}\n".encode()),
            }
            barrier.wait(timeout=START_TIMEOUT)
            r = client.post("/api/submissions/", data, format="multipart")
            results.append((r.status_code, r.json()))
        except BaseException as exc:  # reported below
            errors.append(exc)
        finally:
            connection.close()

    threads = [threading.Thread(target=submit, args=(i, t)) for i, t in enumerate(tokens)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=FINISH_TIMEOUT)
    assert not errors, errors
    assert len(results) == len(tokens), f"{len(tokens) - len(results)} racers did not finish"
    return results
