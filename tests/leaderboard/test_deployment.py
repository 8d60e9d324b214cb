"""The production compose file (docker/compose.yml) is complete: every server with a health
check, the settings production refuses to start without, the Docker socket for the container
track, and the one-off commands kept out of `up`."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[2]
COMPOSE = ROOT / "docker" / "compose.yml"
ENV_EXAMPLE = ROOT / "docker" / "env.example"


@pytest.fixture(scope="module")
def compose() -> dict:
    return yaml.safe_load(COMPOSE.read_text())


def test_every_long_running_service_has_a_health_check(compose):
    services = compose["services"]
    for name in ("db", "redis", "minio", "web", "worker", "beat"):
        assert name in services, name
        check = services[name].get("healthcheck", {})
        assert check.get("test"), f"{name} has no health check"
        assert "profiles" not in services[name]
    for name in ("web", "worker", "beat"):
        deps = services[name]["depends_on"]
        assert all(deps[s]["condition"] == "service_healthy" for s in ("db", "redis", "minio"))


def test_the_app_gets_the_settings_production_needs(compose):
    for name in ("web", "worker", "beat", "migrate", "load-benchmark", "rescore"):
        env = compose["services"][name]["environment"]
        assert env["DJANGO_ENV"] == "production"
        assert env["DATABASE_URL"].startswith("postgres://")
        assert env["CELERY_BROKER_URL"].startswith("redis://")
        for key in ("SECRET_KEY", "ALLOWED_HOSTS", "AWS_STORAGE_BUCKET_NAME", "CACHE_URL"):
            assert env[key], key
        # Secrets come from the environment file, never from the compose file itself.
        assert env["SECRET_KEY"].startswith("${SECRET_KEY:?")


def test_the_worker_reaches_the_docker_engine(compose):
    worker = compose["services"]["worker"]
    assert "/var/run/docker.sock:/var/run/docker.sock" in worker["volumes"]
    assert worker["group_add"]
    assert "docker.sock" not in str(compose["services"]["web"].get("volumes", []))


def test_one_off_commands_are_tools_not_services(compose):
    for name in ("migrate", "load-benchmark", "rescore", "createbucket"):
        assert compose["services"][name]["profiles"] == ["tools"]
    assert compose["services"]["migrate"]["command"][-2:] == ["migrate", "--noinput"]


def test_the_image_serves_collected_static_files_with_gunicorn():
    dockerfile = (ROOT / "docker" / "app" / "Dockerfile").read_text()
    assert "collectstatic --noinput" in dockerfile
    assert '"gunicorn", "leaderboard.wsgi"' in dockerfile
    assert "USER leaderboard" in dockerfile


def test_the_web_service_runs_gunicorn_with_its_limits(compose):
    """The image and compose start gunicorn with leaderboard/gunicorn_config.py: threaded
    workers, a worker timeout, a graceful timeout, bounded request lines and headers; the
    application's body timeout comes from the environment."""
    from leaderboard import gunicorn_config

    web = compose["services"]["web"]
    assert web["command"][:4] == [
        "gunicorn",
        "leaderboard.wsgi",
        "-c",
        "python:leaderboard.gunicorn_config",
    ]
    dockerfile = (ROOT / "docker" / "app" / "Dockerfile").read_text()
    assert '"-c", "python:leaderboard.gunicorn_config"' in dockerfile
    assert gunicorn_config.worker_class == "gthread"
    assert 0 < gunicorn_config.timeout <= 60 and 0 < gunicorn_config.graceful_timeout <= 60
    assert gunicorn_config.limit_request_line <= 8190
    assert gunicorn_config.limit_request_fields <= 100
    assert "REQUEST_BODY_TIMEOUT" in web["environment"]


@pytest.mark.docker
def test_docker_compose_accepts_the_file():
    """`docker-compose config` (Debian's docker-compose package, which bin/test installs)
    validates the file."""
    assert shutil.which("docker-compose"), "docker-compose is not installed (bin/test installs it)"
    out = subprocess.run(
        ["docker-compose", "-f", str(COMPOSE), "--env-file", str(ENV_EXAMPLE),
         "--profile", "tools", "config", "--services"],
        capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    assert out.returncode == 0, out.stderr
    assert set(out.stdout.split()) >= {"db", "redis", "minio", "web", "worker", "beat", "migrate"}


@pytest.mark.slow
@pytest.mark.docker
def test_the_app_image_builds_with_no_registry_and_serves():
    """scripts/build-app-image.sh: the Dockerfile built on a debootstrapped Debian base from
    wheels made beforehand (no registry, no network in the build), then started: `check
    --deploy` with production settings, `migrate`, and gunicorn answering the API, a page
    and a static file; the pages get plotly.js's basic bundle, brought into the build
    context as the build has no network."""
    out = subprocess.run(
        ["bash", str(ROOT / "scripts" / "build-app-image.sh"), "medmod-leaderboard:test"],
        capture_output=True, text=True, timeout=1200,
    )  # fmt: skip
    assert out.returncode == 0, out.stderr[-4000:]
    for line in ("GET /api/limits/ 200", "GET / 200", "GET /static/board/site.css 200",
                 "POST /api/submissions/ declared 3 GiB: 413 file_too_large"):  # fmt: skip
        assert line in out.stderr
    assert "smoke test: the pages get plotly.js's basic bundle" in out.stderr
    assert "the image starts and serves" in out.stderr
