"""Misbehaving model images for the containment tests, built on the template's base.

Each behaviour is a small Python program that becomes the image's entrypoint; the image is
built with the engine's classic builder (no network, no RUN step) and saved with
`docker save`, exactly like a participant's upload.
"""

from __future__ import annotations

import contextlib
import io
import json
import tarfile
import textwrap
from pathlib import Path

import docker

GiB = 1024**3

# Writes 0.5 for every unit under the task's key columns: the smallest valid prediction file.
_PREDICT = """
    import csv, json
    task = json.load(open("/input/task.json"))
    keys = task["key_columns"]
    with open("/input/units.csv") as src, open("/output/predictions.csv", "w") as out:
        w = csv.writer(out, lineterminator="\\n")
        w.writerow(keys + ["prediction"])
        for unit in csv.DictReader(src):
            w.writerow([unit[k] for k in keys] + ["0.5"])
"""


def _predicting(before: str = "", after: str = "") -> str:
    """A behaviour that runs ``before``, writes the constant predictions, then runs ``after``."""
    return "".join(textwrap.dedent(part) for part in (before, _PREDICT, after))


BEHAVIOURS: dict[str, str] = {
    # A well-behaved model of a suite run on its files (Yu et al., MEDFuse): reads the task,
    # the units, the notes and the images it is given, says what it saw, and predicts from
    # the notes (a stay whose notes speak of death or comfort care gets a high probability).
    "suite_reader": """
        import csv, gzip, json, os
        task = json.load(open("/input/task.json"))
        units = list(csv.DictReader(open("/input/units.csv")))
        notes = {}
        path = "/input/notes/notes_test.csv.gz"
        if os.path.exists(path):
            for row in csv.DictReader(gzip.open(path, "rt")):
                notes.setdefault(row["stay_id"], []).append(row["text"])
        images = os.listdir("/input/cxr/images") if os.path.isdir("/input/cxr/images") else []
        print("scenario", task["scenario"], "units", len(units), "notes_stays", len(notes),
              "images", len(images), "demographics", os.path.exists("/input/demographics.csv"))
        words = ("DNR", "comfort", "metastatic", "End-stage", "hospice")
        cols = task["output_columns"].get("probability") or task["output_columns"]["probabilities"]
        with open("/output/predictions.csv", "w") as out:
            w = csv.writer(out)
            w.writerow(["stay_id", *cols])
            for u in units:
                text = " ".join(notes.get(u["stay_id"], []))
                p = 0.9 if any(x in text for x in words) else (0.3 if text else 0.1)
                w.writerow([u["stay_id"], *([p] * len(cols))])
    """,
    # Tries to reach the outside; exits 3 when it cannot (the expected outcome).
    "network": """
        import socket, sys
        reached = []
        for host, port in (("1.1.1.1", 53), ("8.8.8.8", 443), ("192.168.0.1", 80)):
            try:
                socket.create_connection((host, port), timeout=2).close()
                reached.append(f"{host}:{port}")
                print(f"CONNECTED to {host}:{port}")
            except OSError as exc:
                print(f"connect {host}:{port} failed: {exc}")
        try:
            socket.getaddrinfo("example.com", 443)
            reached.append("dns")
            print("CONNECTED: name resolution works")
        except OSError as exc:
            print(f"name resolution failed: {exc}")
        lines = open("/proc/net/dev").read().splitlines()[2:]
        print("interfaces:", sorted(l.split(":")[0].strip() for l in lines))
        sys.exit(0 if reached else 3)
    """,
    # Tries to write everywhere but /output, to gain privileges, then leaves a symlink to a
    # host file as its "predictions".
    "write_outside": """
        import os
        print("uid", os.getuid(), "gid", os.getgid())
        for path in ("/opt/model/evil", "/etc/evil", "/input/evil", "/evil", "/var/tmp/evil",
                     "/usr/lib/evil", "/root/evil", "/input/units.csv"):
            try:
                with open(path, "a") as fh:
                    fh.write("evil")
                print("WRITTEN", path)
            except OSError as exc:
                print("refused", path, exc.strerror)
        for call, args in (("setuid", (0,)), ("chroot", ("/tmp",)), ("mknod", ("/tmp/dev", 0o600 | 0o060000, os.makedev(8, 0)))):
            try:
                getattr(os, call)(*args)
                print("WRITTEN", call)
            except OSError as exc:
                print("refused", call, exc.strerror)
        open("/tmp/scratch", "w").write("scratch space works")
        os.symlink("/etc/passwd", "/output/predictions.csv")
    """,
    # Forks without end; children fork too.
    "fork_bomb": """
        import os, time
        print("forking", flush=True)
        while True:
            try:
                os.fork()
            except OSError:
                time.sleep(0.01)
    """,
    # Says what it sees of its CPUs, its process 1 and its process limit, then sleeps a
    # little (so the test can inspect the container) and exits 5.
    "introspect": """
        import os, time
        print("affinity", len(os.sched_getaffinity(0)), "online", os.cpu_count())
        print("pid1", open("/proc/1/comm").read().strip(), "self", os.getpid())
        for path in ("/sys/fs/cgroup/pids/pids.max", "/sys/fs/cgroup/pids.max"):
            if os.path.exists(path):
                print("pids.max", open(path).read().strip())
        for name in ("write_bps_device", "read_iops_device"):
            path = "/sys/fs/cgroup/blkio/blkio.throttle." + name
            if os.path.exists(path):
                print(name, open(path).read().split())
        time.sleep(2)
        raise SystemExit(5)
    """,
    # Allocates (and touches) memory without end.
    "memory": """
        chunks = []
        while True:
            chunks.append(bytearray(b"\\x01") * (16 * 1024 * 1024))
            print("allocated", 16 * len(chunks), "MiB", flush=True)
    """,
    # Sleeps far past any wall-time limit.
    "sleeper": """
        import time
        print("sleeping", flush=True)
        time.sleep(3600)
    """,
    # Prints a gigabyte of log lines, then exits without output.
    "log_flood": """
        import sys
        sys.stderr.write("flooding the log\\n")
        line = b"x" * 1023 + b"\\n"
        block = line * 1024
        for i in range(1024):
            sys.stdout.buffer.write(block)
        sys.stdout.buffer.write(b"LAST LINE OF THE LOG\\n")
    """,
    # Writes a prediction file without end.
    "huge_output": """
        block = b"30000001,0.5\\n" * 80000
        with open("/output/predictions.csv", "wb") as fh:
            fh.write(b"stay_id,prediction\\n")
            while True:
                fh.write(block)
    """,
    # Writes its predictions, then holds three 300 MiB files it deleted right after opening
    # them (a size check that walks /output never sees them), and exits normally.
    "unlink_open": _predicting(
        after="""
        import os, time
        block, held, total = b"\\1" * (1 << 20), [], 0
        for i in range(3):
            fd = os.open(f"/output/blob{i}", os.O_WRONLY | os.O_CREAT, 0o600)
            os.unlink(f"/output/blob{i}")
            held.append(fd)
            for _ in range(300):
                try:
                    total += os.write(fd, block)
                except OSError as exc:
                    print("refused:", exc.strerror, flush=True)
                    break
        print("held", total >> 20, "MiB in deleted files", flush=True)
        time.sleep(3)
    """
    ),
    # Writes 5 GiB to one file under /output as fast as it can.
    "writer_5g": """
        import os
        block, total = b"\\1" * (1 << 20), 0
        fd = os.open("/output/big", os.O_WRONLY | os.O_CREAT, 0o600)
        try:
            for _ in range(5 * 1024):
                total += os.write(fd, block)
        except OSError as exc:
            print("refused after", total >> 20, "MiB:", exc.strerror, flush=True)
        print("wrote", total >> 20, "MiB", flush=True)
    """,
    # Writes its predictions, then 64 MiB into a directory it then closes to everyone
    # (mode 000): neither a size check nor a removal by another uid can look inside.
    "locked_dir": _predicting(
        before="""
        import os
        print("uid", os.getuid(), "gid", os.getgid(), flush=True)
    """,
        after="""
        os.mkdir("/output/locked")
        total = 0
        try:
            with open("/output/locked/blob", "wb") as fh:
                for _ in range(64):
                    total += fh.write(b"\\1" * (1 << 20))
                    fh.flush()
        except OSError as exc:
            print("refused:", exc.strerror, flush=True)
        os.chmod("/output/locked", 0)
        print("locked", total >> 20, "MiB", flush=True)
    """,
    ),
    # Fills /output with small files.
    "many_files": """
        import os
        os.makedirs("/output/junk", exist_ok=True)
        i = 0
        while True:
            open(f"/output/junk/{i}", "w").close()
            i += 1
    """,
    # Declares a VOLUME and fills it: it must get bounded scratch space, not a disk volume.
    "volume_writer": """
        # VOLUME /data
        for line in open("/proc/mounts"):
            if " /data " in line:
                print("mount:", line.strip())
        with open("/data/blob", "wb") as fh:
            for _ in range(64):
                fh.write(b"\\0" * (1024 * 1024))
    """,
    # Writes 0.5 for every unit: the smallest valid model (used to measure overhead).
    "constant": _predicting(),
    # Exits with an error after printing a traceback.
    "crash": """
        print("loading the model")
        raise RuntimeError("weights file not found: /opt/model/weights.pt")
    """,
    # Exits normally without writing anything.
    "no_output": """
        print("done, but forgot to write the predictions")
    """,
    # Writes something that is not a CSV prediction file.
    "wrong_output": """
        import gzip
        with gzip.open("/output/predictions.csv", "wb") as fh:
            fh.write(b"stay_id,prediction\\n1,0.5\\n")
    """,
}


def _context(script: str) -> io.BytesIO:
    body = textwrap.dedent(script).lstrip()
    # A first line "# VOLUME /path" declares that volume in the image.
    first = body.splitlines()[0]
    volume = f"{first[2:]}\n" if first.startswith("# VOLUME ") else ""
    files = {
        "Dockerfile": (
            f"ARG BASE\nFROM ${{BASE}}\n{volume}COPY behaviour.py /opt/hostile/behaviour.py\n"
            'ENTRYPOINT ["python3", "/opt/hostile/behaviour.py"]\nCMD []\n'
        ),
        "behaviour.py": body,
    }
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w") as tf:
        for name, text in files.items():
            data = text.encode()
            info = tarfile.TarInfo(name)
            info.size = len(data)
            info.mode = 0o644
            tf.addfile(info, io.BytesIO(data))
    buf.seek(0)
    return buf


def save_image(client: docker.DockerClient, tag: str, dest: Path) -> Path:
    """`docker save` of one image to a file, streamed."""
    with dest.open("wb") as fh:
        for chunk in client.api.get_image(tag):
            fh.write(chunk)
    return dest


class HostileImages:
    """Builds each behaviour's image on first use and keeps its archive for the session."""

    def __init__(self, client: docker.DockerClient, base: str, directory: Path) -> None:
        self.client = client
        self.base = base
        self.directory = directory
        self.tags: list[str] = []
        self.archives: dict[str, Path] = {}

    def archive(self, name: str) -> Path:
        if name not in self.archives:
            tag = f"medmod-test/{name.replace('_', '-')}:latest"
            self.client.images.build(
                fileobj=_context(BEHAVIOURS[name]),
                custom_context=True,
                tag=tag,
                buildargs={"BASE": self.base},
                network_mode="none",
                rm=True,
                forcerm=True,
            )
            self.tags.append(tag)
            self.archives[name] = save_image(self.client, tag, self.directory / f"{name}.tar")
        return self.archives[name]

    def remove_all(self) -> None:
        for tag in self.tags:
            with contextlib.suppress(docker.errors.APIError):
                self.client.images.remove(tag, force=True)


def rewrite_config(archive: Path, dest: Path, **changes: object) -> Path:
    """A copy of a one-image archive with top-level config fields changed (e.g. the
    architecture), its config renamed to the new digest as `docker save` would."""
    import hashlib

    with tarfile.open(archive) as src:
        manifest = json.loads(src.extractfile("manifest.json").read())  # type: ignore[union-attr]
        old = manifest[0]["Config"]
        config = json.loads(src.extractfile(old).read())  # type: ignore[union-attr]
        config.update(changes)
        data = json.dumps(config).encode()
        new = hashlib.sha256(data).hexdigest() + ".json"
        manifest[0]["Config"] = new
        with tarfile.open(dest, "w") as out:
            for m in src.getmembers():
                if m.name in (old, "manifest.json"):
                    continue
                out.addfile(m, src.extractfile(m) if m.isfile() else None)
            for name, payload in ((new, data), ("manifest.json", json.dumps(manifest).encode())):
                info = tarfile.TarInfo(name)
                info.size = len(payload)
                out.addfile(info, io.BytesIO(payload))
    return dest


def tiny_image(
    client: docker.DockerClient,
    tag: str,
    *,
    changes: list[str] | None = None,
    payload_bytes: int = 64 * 1024,
) -> str:
    """An image imported from a one-file root filesystem (nothing in it can run): enough
    for the upload checks and for loading."""
    import os

    data = os.urandom(payload_bytes)
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w") as tf:
        info = tarfile.TarInfo("payload.bin")
        info.size = len(data)
        tf.addfile(info, io.BytesIO(data))
    repository, _, name = tag.rpartition(":")
    client.api.import_image_from_data(
        buf.getvalue(), repository=repository, tag=name, changes=changes or []
    )
    return tag


def save_images(tags: list[str], dest: Path) -> Path:
    """`docker save` of several images into one archive."""
    import subprocess

    subprocess.run(["docker", "save", "-o", str(dest), *tags], check=True)
    return dest


# Image configuration change giving tiny images a command (they are never started).
CMD = ['CMD ["/payload.bin"]']
