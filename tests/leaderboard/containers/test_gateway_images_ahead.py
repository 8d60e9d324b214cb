"""The gateway's image thread: the images of the coming steps are read and encoded while
the model works, and nothing about the messages changes. A read failure surfaces at the
step that needed the image; the thread stops when the run ends or the revealer is dropped.
"""

from __future__ import annotations

import dataclasses
import gc
import threading
import time

import pytest

from benchmark_data import Benchmark, BenchmarkError
from benchmark_data.sequestered import test_split
from leaderboard.containers.gateway import Revealer, build_timeline


def image_threads() -> list[threading.Thread]:
    return [t for t in threading.enumerate() if t.name == "gateway-images"]


def wait_until_gone(timeout: float = 3.0) -> list[threading.Thread]:
    deadline = time.monotonic() + timeout
    while image_threads() and time.monotonic() < deadline:
        time.sleep(0.05)
    return image_threads()


@pytest.fixture(scope="module")
def radiology(demo_bench: Benchmark):
    return build_timeline(test_split(demo_bench), "radiology", "paired")


def image_steps(tl) -> list[int]:
    b = tl.image_bounds
    return [k for k in range(tl.n_steps) if b[k + 1] > b[k]]


def test_messages_are_the_same_bytes_with_the_images_encoded_ahead(radiology):
    ahead, in_step = Revealer(radiology), Revealer(radiology, prefetch=False)
    try:
        for k in range(radiology.n_steps):
            assert ahead.step(k) == in_step.step(k)
        assert ahead.revealed == in_step.revealed
        assert ahead.revealed.images == len(radiology.images) > 0
        assert ahead.prefetch_cpu_seconds > 0.0 and in_step.prefetch_cpu_seconds == 0.0
    finally:
        ahead.close()
    assert wait_until_gone() == []


def test_a_step_asked_out_of_order_is_still_whole(radiology):
    steps = image_steps(radiology)
    late, early = steps[len(steps) // 2], steps[1]
    reference = Revealer(radiology, prefetch=False)
    revealer = Revealer(radiology)
    try:
        got_late = revealer.step(late)  # the feed skips the steps before it
        got_early = revealer.step(early)  # the feed has passed it: encoded in the step
    finally:
        revealer.close()
    assert got_late[0] == reference.step(late)[0]
    assert got_early[0] == reference.step(early)[0]


def test_an_image_that_cannot_be_read_fails_the_step_that_needs_it(radiology):
    first = image_steps(radiology)[0]
    dicoms = {d for *_, d in radiology.images}
    bad = radiology.images[int(radiology.image_bounds[first])][3]

    def read(dicom: str) -> bytes:
        assert dicom in dicoms
        if dicom == bad:
            raise BenchmarkError(f"the test image {dicom} does not match the manifest")
        return radiology.read_image(dicom)

    broken = dataclasses.replace(radiology, read_image=read)
    revealer = Revealer(broken)
    try:
        for k in range(first):  # the steps before it go out as usual
            revealer.step(k)
        with pytest.raises(BenchmarkError, match=bad):
            revealer.step(first)
    finally:
        revealer.close()
    assert wait_until_gone() == []


def test_the_thread_stops_when_the_revealer_is_dropped_unclosed(radiology):
    revealer = Revealer(radiology)
    revealer.step(0)
    assert image_threads()  # still encoding ahead, its queue full
    del revealer
    gc.collect()
    assert wait_until_gone() == []
