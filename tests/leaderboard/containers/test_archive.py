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
        "has 3 layers, over the limit of 1",
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


def _other_layer(size: int) -> bytes:
    """A valid layer tarball of about ``size`` bytes, with other contents."""
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w") as tf:
        data = os.urandom(max(0, size - 3 * tarfile.BLOCKSIZE))
        info = tarfile.TarInfo("payload.bin")
        info.size = len(data)
        tf.addfile(info, io.BytesIO(data))
    return buf.getvalue()


def test_a_layer_the_engine_rejects_ends_as_image_invalid(images, engine, tmp_path):
    """A layer replaced by another tar archive passes the upload checks but not the engine's
    load (its digest is not the configuration's): image_invalid with the engine's reason,
    and no image is left. (The image is removed from the engine first: a layer the engine
    already holds is not read again.)"""
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
                data = _other_layer(m.size)
                m.size = len(data)
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


def _entry(name: str, *, kind: bytes = tarfile.REGTYPE, mode: int = 0o644, data: bytes = b"",
           pax: dict[str, str] | None = None, dev: tuple[int, int] = (0, 0)):  # fmt: skip
    info = tarfile.TarInfo(name)
    info.type, info.mode, info.size = kind, mode, len(data) if kind == tarfile.REGTYPE else 0
    info.devmajor, info.devminor = dev
    info.pax_headers = pax or {}
    return info, data


def layered_archive(dest: Path, *layers: list) -> Path:
    """A `docker save` archive of one image made of these layers (lists of tar entries,
    lowest first), with the configuration's diff ids right, as the engine would load it."""
    import hashlib

    blobs = []
    for entries in layers:
        buf = io.BytesIO()
        with tarfile.open(fileobj=buf, mode="w", format=tarfile.PAX_FORMAT) as tf:
            for info, data in entries:
                tf.addfile(info, io.BytesIO(data) if info.isreg() else None)
        blobs.append(buf.getvalue())
    config = json.dumps({
        "architecture": A.engine_architecture(), "os": "linux",
        "config": {"Cmd": ["/bin/model"]},
        "rootfs": {"type": "layers",
                   "diff_ids": ["sha256:" + hashlib.sha256(b).hexdigest() for b in blobs]},
    }).encode()  # fmt: skip
    config_name = hashlib.sha256(config).hexdigest() + ".json"
    names = [f"{i}/layer.tar" for i in range(len(blobs))]
    manifest = json.dumps([{"Config": config_name, "RepoTags": ["medmod-test/layers:x"],
                            "Layers": names}]).encode()  # fmt: skip
    with tarfile.open(dest, "w") as out:
        for name, data in ((config_name, config), *zip(names, blobs, strict=True),
                           ("manifest.json", manifest)):  # fmt: skip
            info = tarfile.TarInfo(name)
            info.size = len(data)
            out.addfile(info, io.BytesIO(data))
    return dest


BASE = [_entry("bin/", kind=tarfile.DIRTYPE, mode=0o755),
        _entry("bin/model", mode=0o755, data=b"#!/bin/sh\n"),
        _entry("dev/", kind=tarfile.DIRTYPE, mode=0o755),
        _entry("dev/null", kind=tarfile.CHRTYPE, mode=0o666, dev=(1, 3)),
        _entry("var/", kind=tarfile.DIRTYPE, mode=0o755),
        _entry("var/mail/", kind=tarfile.DIRTYPE, mode=0o2775)]  # fmt: skip
SETUID = _entry("bin/su", mode=0o4755, data=b"\x7fELF")


def test_device_files_outside_dev_are_refused_by_name(tmp_path):
    """A character or block device anywhere but /dev is refused, naming the file; device
    files under /dev (which the runtime replaces with its own) and set-group-ID directories
    pass."""
    inspect_image_archive(layered_archive(tmp_path / "ok.tar", BASE))
    disk = _entry("opt/model/disk", kind=tarfile.BLKTYPE, mode=0o660, dev=(8, 0))
    msg = refused(layered_archive(tmp_path / "blk.tar", BASE, [disk]),
                  "the image holds the device file /opt/model/disk (block device)")  # fmt: skip
    assert "outside /dev" in msg
    mem = _entry("mem", kind=tarfile.CHRTYPE, mode=0o666, dev=(1, 1))
    refused(layered_archive(tmp_path / "chr.tar", [*BASE, mem]),
            "the image holds the device file /mem (character device)")  # fmt: skip


def test_setuid_and_setgid_files_are_refused_with_the_fix(tmp_path):
    """A set-user-ID or set-group-ID file is refused naming it (and counting the others),
    with the Dockerfile line that clears the bits."""
    sg = _entry("usr/bin/chage", mode=0o2755, data=b"\x7fELF")
    msg = refused(layered_archive(tmp_path / "suid.tar", [*BASE, SETUID, sg]),
                  "the image holds /bin/su, a set-user-ID file (and 1 more: /usr/bin/chage)")  # fmt: skip
    assert "RUN find / -xdev -perm /6000 -type f -exec chmod a-s {} +" in msg
    both = _entry("bin/both", mode=0o6755, data=b"x")
    refused(layered_archive(tmp_path / "both.tar", [*BASE, both]),
            "/bin/both, a set-user-ID and set-group-ID file")  # fmt: skip
    link = _entry("bin/su2", kind=tarfile.LNKTYPE, mode=0o4755)
    link[0].linkname = "bin/model"
    refused(layered_archive(tmp_path / "link.tar", BASE, [link]), "/bin/su2, a set-user-ID")


def test_file_capabilities_are_refused_by_name(tmp_path):
    """A file carrying the security.capability extended attribute (a PAX header, as
    `docker save` writes it) is refused naming it, however its layer was written."""
    for key in ("SCHILY.xattr.security.capability", "LIBARCHIVE.xattr.security.capability"):
        ping = _entry("bin/ping", mode=0o755, data=b"\x7fELF", pax={key: "\x01\x00\x00\x02"})
        msg = refused(layered_archive(tmp_path / "cap.tar", BASE, [ping]),
                      "the image holds /bin/ping, a file with capabilities")  # fmt: skip
        assert "setcap -r /bin/ping" in msg


def test_a_later_layer_that_clears_the_bits_makes_the_image_acceptable(tmp_path):
    """The image's file system as the engine assembles it counts: a set-user-ID file whose
    bits a later layer cleared, or that a later layer deleted (a whiteout of it or of its
    directory, an opaque directory), passes; one that a later layer sets again does not."""
    cleared = _entry("bin/su", mode=0o755, data=b"\x7fELF")
    inspect_image_archive(layered_archive(tmp_path / "chmod.tar", [*BASE, SETUID], [cleared]))
    gone = _entry("bin/.wh.su")
    inspect_image_archive(layered_archive(tmp_path / "wh.tar", [*BASE, SETUID], [gone]))
    opaque = [_entry("bin/", kind=tarfile.DIRTYPE, mode=0o755), _entry("bin/.wh..wh..opq")]
    inspect_image_archive(layered_archive(tmp_path / "opq.tar", [*BASE, SETUID], opaque))
    parent = _entry(".wh.bin")
    inspect_image_archive(layered_archive(tmp_path / "whdir.tar", [*BASE, SETUID], [parent]))
    refused(layered_archive(tmp_path / "again.tar", [*BASE, SETUID], [cleared], [SETUID]),
            "/bin/su, a set-user-ID file")  # fmt: skip
    # A clearing layer below the set-user-ID one does not help.
    refused(layered_archive(tmp_path / "below.tar", [*BASE, cleared], [SETUID]),
            "/bin/su, a set-user-ID file")  # fmt: skip


def test_the_engine_loads_what_the_layer_checks_refuse(engine, tmp_path):
    """The refused archives are real images: the engine would load them (and create the
    device file); the refusal is the platform's own line of defence."""
    disk = _entry("opt/disk", kind=tarfile.BLKTYPE, mode=0o660, dev=(8, 0))
    archive = layered_archive(tmp_path / "real.tar", [*BASE, SETUID], [disk])
    refused(archive, "the image holds the device file /opt/disk")
    with archive.open("rb") as fh:
        loaded = engine.images.load(fh.read())
    try:
        assert [t for img in loaded for t in img.tags] == ["medmod-test/layers:x"]
    finally:
        engine.images.remove("medmod-test/layers:x", force=True)


def test_a_layer_that_is_not_a_tar_archive_is_refused(tmp_path):
    """Layers are read at upload: one that is not a tar archive is refused naming it."""
    path = layered_archive(tmp_path / "ok.tar", BASE)
    bad = tmp_path / "bad.tar"
    with tarfile.open(path) as src, tarfile.open(bad, "w") as out:
        for m in src.getmembers():
            data = src.extractfile(m).read()  # type: ignore[union-attr]
            if m.name.endswith("layer.tar"):
                data = os.urandom(m.size)
            out.addfile(m, io.BytesIO(data))
    refused(bad, "the image's layer 0/layer.tar is not a tar archive")
