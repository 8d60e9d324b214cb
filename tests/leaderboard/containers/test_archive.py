"""Upload checks: only one runnable linux image of the engine's architecture, within the
size limits, is accepted; anything else is refused with a message saying what to do."""

from __future__ import annotations

import gzip
import io
import json
import os
import shutil
import tarfile
from pathlib import Path

import docker
import pytest

from leaderboard.containers import (
    DEFAULT_LIMITS,
    ImageArchiveError,
    RunStatus,
    inspect_image_archive,
    new_run_id,
    run_container,
)
from leaderboard.containers import archive as A
from leaderboard.containers.engine import load_image, remove_image
from tests.leaderboard.containers.conftest import leftovers
from tests.leaderboard.containers.hostile import CMD, rewrite_config, save_images, tiny_image


@pytest.fixture(scope="module")
def images(engine: docker.DockerClient, tmp_path_factory: pytest.TempPathFactory):
    """Small real images saved by the engine: one runnable-looking, one without a command,
    one with many volumes, and an archive holding two images."""
    d = tmp_path_factory.mktemp("archives")
    tags = {
        "ok": tiny_image(engine, "medmod-test/tiny:ok", changes=CMD, payload_bytes=256 * 1024),
        "other": tiny_image(engine, "medmod-test/tiny:other", changes=CMD),
        "nocmd": tiny_image(engine, "medmod-test/tiny:nocmd"),
        "volumes": tiny_image(
            engine,
            "medmod-test/tiny:volumes",
            changes=[*CMD, *(f"VOLUME /v{i}" for i in range(20))],
        ),
    }
    out = {name: save_images([tag], d / f"{name}.tar") for name, tag in tags.items()}
    out["two"] = save_images([tags["ok"], tags["other"]], d / "two.tar")
    out["dir"] = d
    yield out
    for tag in tags.values():
        engine.images.remove(tag, force=True)


def refused(path: Path, message: str, **kwargs) -> str:
    with pytest.raises(ImageArchiveError) as exc:
        inspect_image_archive(path, **kwargs)
    assert message in str(exc.value), str(exc.value)
    return str(exc.value)


def test_a_saved_image_is_accepted(images):
    info = inspect_image_archive(images["ok"])
    assert info.cmd == ("/payload.bin",) and info.entrypoint == ()
    assert info.repo_tags == ("medmod-test/tiny:ok",)
    assert info.n_layers == 1 and info.layers_bytes > 256 * 1024
    assert info.image_id.startswith("sha256:") and info.compression is None


def test_a_gzip_compressed_archive_is_accepted(images, tmp_path):
    gz = tmp_path / "ok.tar.gz"
    with images["ok"].open("rb") as src, gzip.open(gz, "wb") as dst:
        shutil.copyfileobj(src, dst)
    assert inspect_image_archive(gz).compression == "gzip"
    assert inspect_image_archive(gz).image_id == inspect_image_archive(images["ok"]).image_id


def test_two_images_are_refused(images):
    refused(images["two"], "the archive holds 2 images; exactly one is run")


def test_an_image_without_entrypoint_or_cmd_is_refused(images):
    refused(images["nocmd"], "neither ENTRYPOINT nor CMD")


def test_another_architecture_is_refused(images, tmp_path):
    arm = rewrite_config(images["ok"], tmp_path / "arm.tar", architecture="arm64")
    msg = refused(arm, "built for linux/arm64", architecture="amd64")
    assert "--platform linux/amd64" in msg
    win = rewrite_config(images["ok"], tmp_path / "win.tar", os="windows")
    refused(win, "built for windows/", architecture="amd64")


def test_size_limits_are_enforced(images):
    size = images["ok"].stat().st_size
    refused(images["ok"], "over the limit of", limits=DEFAULT_LIMITS.with_(archive_bytes=size - 1))
    refused(
        images["ok"],
        "layers total more than 100.0 KiB",
        limits=DEFAULT_LIMITS.with_(layers_bytes=100 * 1024),
    )
    refused(images["volumes"], "declares 20 VOLUMEs, over the limit of 16")


def test_too_many_layers_are_refused(template_archive):
    refused(
        template_archive,
        "has 2 layers, over the limit of 1",
        limits=DEFAULT_LIMITS.with_(max_layers=1),
    )


def test_files_that_are_not_image_archives_are_refused(images, tmp_path):
    empty = tmp_path / "empty.tar"
    empty.write_bytes(b"")
    refused(empty, A.ERR_EMPTY)
    text = tmp_path / "model.py"
    text.write_text("print('hello')\n" * 100)
    refused(text, "is not a tar archive")
    refused(tmp_path / "missing.tar", "does not exist")
    # A root filesystem tarball (what `docker export` writes) is not an image.
    rootfs = tmp_path / "rootfs.tar"
    with tarfile.open(rootfs, "w") as tf:
        for name in ("etc/passwd", "bin/sh"):
            info = tarfile.TarInfo(name)
            info.size = 4
            tf.addfile(info, io.BytesIO(b"data"))
    refused(rootfs, "no manifest.json")


def test_a_truncated_archive_is_refused(images, tmp_path):
    data = images["ok"].read_bytes()
    cut = tmp_path / "cut.tar"
    with tarfile.open(images["ok"]) as tf:
        layer = next(m for m in tf.getmembers() if m.name.endswith("layer.tar"))
    cut.write_bytes(data[: layer.offset_data + 1000])
    refused(cut, "damaged or truncated")


def test_unsafe_or_ambiguous_entries_are_refused(images, tmp_path):
    def with_extra(name: str, member: tarfile.TarInfo, payload: bytes = b"") -> Path:
        dest = tmp_path / name
        with tarfile.open(images["ok"]) as src, tarfile.open(dest, "w") as out:
            for m in src.getmembers():
                out.addfile(m, src.extractfile(m) if m.isfile() else None)
            out.addfile(member, io.BytesIO(payload) if payload else None)
        return dest

    up = tarfile.TarInfo("../escape")
    up.size = 1
    refused(with_extra("up.tar", up, b"x"), "unsafe name or type")
    link = tarfile.TarInfo("hard")
    link.type = tarfile.LNKTYPE
    link.linkname = "manifest.json"
    refused(with_extra("link.tar", link), "unsafe name or type")
    dup = tarfile.TarInfo("./manifest.json")
    dup.size = 2
    refused(with_extra("dup.tar", dup, b"[]"), "holds the entry 'manifest.json' twice")


def test_a_bad_manifest_is_refused(images, tmp_path):
    def with_manifest(payload: bytes) -> Path:
        dest = tmp_path / "m.tar"
        with tarfile.open(images["ok"]) as src, tarfile.open(dest, "w") as out:
            for m in src.getmembers():
                if m.name != "manifest.json":
                    out.addfile(m, src.extractfile(m) if m.isfile() else None)
            info = tarfile.TarInfo("manifest.json")
            info.size = len(payload)
            out.addfile(info, io.BytesIO(payload))
        return dest

    refused(with_manifest(b"{not json"), "manifest.json of the archive is not valid")
    refused(with_manifest(b"[]"), "holds 0 images")
    missing = json.dumps([{"Config": "nope.json", "Layers": []}]).encode()
    refused(with_manifest(missing), "names nope.json, which is not in the archive")


def test_loading_never_sets_the_uploads_tags(images, engine, tmp_path):
    """The upload says medmod-test/tiny:ok; an image already tagged so on the worker keeps
    its tag, and the loaded image is known only by the run's tag until it is removed."""
    victim = tiny_image(engine, "medmod-test/victim:latest", changes=CMD)
    before = engine.images.get(victim).id
    upload = rewrite_config(images["ok"], tmp_path / "retag.tar")  # same image, new file
    with tarfile.open(upload) as tf:
        manifest = json.loads(tf.extractfile("manifest.json").read())  # type: ignore[union-attr]
    assert manifest[0]["RepoTags"] == ["medmod-test/tiny:ok"]
    manifest[0]["RepoTags"] = [victim]
    forged = tmp_path / "forged.tar"
    with tarfile.open(upload) as src, tarfile.open(forged, "w") as out:
        for m in src.getmembers():
            if m.name != "manifest.json":
                out.addfile(m, src.extractfile(m) if m.isfile() else None)
        data = json.dumps(manifest).encode()
        info = tarfile.TarInfo("manifest.json")
        info.size = len(data)
        out.addfile(info, io.BytesIO(data))
    info = inspect_image_archive(forged)
    run_id = new_run_id()
    tag = load_image(engine, info, run_id)
    try:
        assert engine.images.get(tag).id == info.image_id
        assert engine.images.get(victim).id == before
    finally:
        remove_image(engine, tag)
        engine.images.remove(victim, force=True)
    assert leftovers(engine, run_id) == []


def test_an_invalid_upload_ends_as_image_invalid(images, engine, tmp_path):
    """run_container reports image_invalid with the reason and loads nothing."""
    run_id = new_run_id()
    r = run_container(
        images["nocmd"],
        task="in-hospital-mortality",
        scenario="paired",
        input_dir=tmp_path,
        work_dir=tmp_path / "work",
        client=engine,
        run_id=run_id,
    )
    assert r.status == RunStatus.IMAGE_INVALID
    assert "neither ENTRYPOINT nor CMD" in r.message
    assert leftovers(engine, run_id) == []


def test_an_entrypoint_that_cannot_start_ends_as_image_invalid(images, engine, tmp_path):
    """An image whose command is not an executable in it passes the upload checks but
    cannot start: image_invalid, with the runtime's reason, and nothing left behind."""
    tag = tiny_image(engine, "medmod-test/tiny:python", changes=['ENTRYPOINT ["python3"]'])
    try:
        archive = save_images([tag], tmp_path / "python.tar")
    finally:
        engine.images.remove(tag, force=True)
    for path, reason in (
        (images["ok"], "permission denied"),
        (archive, "executable file not found"),
    ):
        run_id = new_run_id()
        r = run_container(
            path,
            task="in-hospital-mortality",
            scenario="paired",
            input_dir=tmp_path,
            work_dir=tmp_path / "work",
            client=engine,
            run_id=run_id,
        )
        assert r.status == RunStatus.IMAGE_INVALID, r.message
        assert "could not be started" in r.message and reason in r.message
        assert leftovers(engine, run_id) == []
        assert os.listdir(tmp_path / "work") == []


def test_a_layer_the_engine_rejects_ends_as_image_invalid(images, engine, tmp_path):
    """A layer whose bytes were replaced passes the structural checks but not the engine's
    load: image_invalid with the engine's reason, and no image is left. (The image is
    removed from the engine first: a layer the engine already holds is not read again.)"""
    tag = tiny_image(engine, "medmod-test/tiny:forge", changes=CMD)
    try:
        saved = save_images([tag], tmp_path / "forge.tar")
    finally:
        engine.images.remove(tag, force=True)
    forged = tmp_path / "forged-layer.tar"
    with tarfile.open(saved) as src, tarfile.open(forged, "w") as out:
        for m in src.getmembers():
            data = src.extractfile(m).read() if m.isfile() else None  # type: ignore[union-attr]
            if m.name.endswith("layer.tar"):
                data = os.urandom(m.size)
            out.addfile(m, io.BytesIO(data) if data is not None else None)
    inspect_image_archive(forged)
    run_id = new_run_id()
    r = run_container(
        forged,
        task="in-hospital-mortality",
        scenario="paired",
        input_dir=tmp_path,
        work_dir=tmp_path / "work",
        client=engine,
        run_id=run_id,
    )
    assert r.status == RunStatus.IMAGE_INVALID, r.message
    assert r.message.startswith("the engine could not load the image"), r.message
    assert leftovers(engine, run_id) == []
