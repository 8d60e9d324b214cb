"""CareBench's HEALNet, Flex-MoE, UTDE, AUG and InfoReg as reference baselines: shapes, the
no-image path, batch independence, auxiliary objectives and gradient modulation, real
training on the tiny benchmark, and byte-identical reruns."""

from __future__ import annotations

import shutil

import numpy as np
import pytest
import torch

from benchmark_data.benchmark import Benchmark
from scoring.baselines import MODEL_NAMES
from scoring.baselines.batch import Batch
from scoring.baselines.models import UNIMODAL, build_model
from scoring.baselines.run import RunConfig, train_model
from scoring.baselines.training import FitOptions, fit
from scoring.baselines.workspace import Workspace

from .fixtures import make_tiny_benchmark

torch.set_num_threads(1)

MODELS = ("healnet", "utde")
# Out sizes of the three kinds of task: mortality, phenotyping's 25 labels, the 10 buckets.
KINDS = {"binary": 1, "multilabel": 25, "los": 10}
SIZE = 32


def _model(name: str, kind: str = "binary", *, seed: int = 0):
    torch.manual_seed(seed)
    common = {"kind": kind, "out_dim": KINDS[kind], "ehr_hidden": 16, "cxr_encoder": "small"}
    unimodal = {m: build_model(m, **common) for m in UNIMODAL}
    model = build_model(name, unimodal=unimodal, **common)
    with torch.no_grad():  # a trained no-image input is not zero
        for pname, param in model.named_parameters():
            if "no_image" in pname:
                param.normal_(0.0, 0.5)
    return model


def _batch(*, seed: int = 0, images: int = 2) -> Batch:
    """Three stays of 6 rows, one read-out each at its last row; unit 1 has no image, units
    0 and 2 the images 0 and 1 (none when ``images`` is 0)."""
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(3, 6, 76, generator=g)
    px = torch.randn(images, 1, SIZE, SIZE, generator=g)
    ro_img = torch.tensor([0, -1, 1]) if images else torch.full((3,), -1)
    return Batch(x=x, images=px, ro_seq=torch.arange(3), ro_pos=torch.tensor([5, 5, 5]),
                 ro_img=ro_img, step_img=ro_img.view(3, 1).expand(3, 6).clone(),
                 y=torch.tensor([1.0, 0.0, 1.0]))  # fmt: skip


def _alone(b: Batch, i: int) -> Batch:
    """Unit ``i`` of a per-unit batch as a batch of its own."""
    img = int(b.ro_img[i])
    images = b.images[img : img + 1] if img >= 0 else b.images[:0]
    ro_img = torch.tensor([0 if img >= 0 else -1])
    return Batch(x=b.x[i : i + 1], images=images, ro_seq=torch.tensor([0]),
                 ro_pos=b.ro_pos[i : i + 1], ro_img=ro_img,
                 step_img=ro_img.view(1, 1).expand(1, b.x.shape[1]).clone())  # fmt: skip


def test_the_strategies_are_registered_in_order():
    """Missing-modality strategies come before complete-modality ones in MODEL_NAMES."""
    for name in MODELS:
        assert name in MODEL_NAMES
    assert MODEL_NAMES.index("healnet") < MODEL_NAMES.index("utde")


@pytest.mark.parametrize("name", MODELS)
@pytest.mark.parametrize("kind", list(KINDS))
def test_output_shapes_for_every_kind(name, kind):
    b = _batch()
    m = _model(name, kind).eval()
    with torch.no_grad():
        logits = m(b)
        p = m.probabilities(b)
    assert logits.shape == p.shape == (3, KINDS[kind])
    assert torch.isfinite(p).all()
    if kind == "los":
        assert torch.allclose(p.sum(dim=1), torch.ones(3), atol=1e-5)


@pytest.mark.parametrize("name", MODELS)
def test_a_unit_without_an_image_ignores_the_other_units_images(name):
    """Unit 1 has no image: other pixels, or no image in the batch at all, change nothing."""
    m = _model(name).eval()
    b = _batch()
    with torch.no_grad():
        p1 = m.probabilities(b)[1]
        b.images = torch.randn_like(b.images) * 3
        p2 = m.probabilities(b)[1]
        p3 = m.probabilities(_batch(images=0))[1]
    assert torch.allclose(p1, p2, atol=1e-6)
    assert torch.allclose(p1, p3, atol=1e-6)


@pytest.mark.parametrize("name", MODELS)
def test_no_image_gradients_skip_the_image_encoder(name):
    """The loss of a unit without an image reaches the EHR encoder and not the CNN; a
    unit with an image reaches both."""
    m = _model(name).eval()
    b = _batch()
    m(b)[1].sum().backward()
    grads = dict(m.named_parameters())
    cnn = [p.grad for n, p in grads.items() if n.startswith("cxr.")]
    assert all(g is None or not g.any() for g in cnn)
    assert grads["ehr.lstm1.weight_ih_l0"].grad.abs().sum() > 0
    m.zero_grad()
    m(b)[0].sum().backward()
    assert grads["cxr.stem.0.weight"].grad.abs().sum() > 0


@pytest.mark.parametrize("name", ["utde"])
def test_complete_modality_strategies_learn_their_no_image_input(name):
    m = _model(name).eval()
    m(_batch())[1].sum().backward()
    assert m.no_image.grad is not None and m.no_image.grad.abs().sum() > 0


@pytest.mark.parametrize("name", MODELS)
def test_a_unit_predicts_the_same_alone_and_in_a_batch(name):
    m = _model(name, "multilabel").eval()
    b = _batch()
    with torch.no_grad():
        together = m.probabilities(b)
        for i in range(3):
            assert torch.allclose(m.probabilities(_alone(b, i))[0], together[i], atol=1e-5)


@pytest.mark.parametrize("name", MODELS)
def test_training_loss_is_finite_and_reaches_both_encoders(name):
    m = _model(name).train()
    loss = m.training_loss(_batch())
    assert loss.ndim == 0 and torch.isfinite(loss)
    loss.backward()
    grads = dict(m.named_parameters())
    assert grads["ehr.lstm2.weight_hh_l0"].grad.abs().sum() > 0
    assert grads["cxr.stem.0.weight"].grad.abs().sum() > 0


# -- training on the tiny benchmark ---------------------------------------------------------

CONFIG = RunConfig(seed=5, epochs=2, patience=1, ehr_hidden=8, epoch_steps=600, threads=1)
TASK = "in-hospital-mortality"


@pytest.fixture(scope="module")
def bench_dir(tmp_path_factory):
    return make_tiny_benchmark(tmp_path_factory.mktemp("bench"), seed=11)


@pytest.mark.slow
@pytest.mark.parametrize("name", MODELS)
def test_training_lowers_the_training_loss(bench_dir, name):
    """Eight epochs on the tiny benchmark: the last two epochs' mean training loss is below
    the first epoch's."""
    torch.use_deterministic_algorithms(True)
    ws = Workspace.load(Benchmark.open(bench_dir), [TASK], image_size=32, max_hours=48)
    train, val = ws.data(TASK, "train"), ws.data(TASK, "val")
    torch.manual_seed(1)
    model = build_model(name, kind="binary", out_dim=1, ehr_hidden=16, cxr_encoder="small")
    result = fit(model, train, val, ehr_train=ws.ehr["train"], ehr_val=ws.ehr["val"],
                 images=ws.images,
                 options=FitOptions(lr=1e-3, epochs=8, patience=8, batch_size=8, seed=2))  # fmt: skip
    losses = [r["train_loss"] for r in result.history]
    assert len(losses) == 8 and np.isfinite(losses).all()
    assert np.mean(losses[-2:]) < losses[0], losses


@pytest.mark.slow
def test_two_runs_with_the_same_seed_write_identical_predictions(bench_dir, tmp_path):
    first = tmp_path / "first"
    for task, model in (("radiology", "cxr"), (TASK, "ehr"), (TASK, "cxr")):
        train_model(bench_dir, run_dir=first, task=task, model=model, config=CONFIG)
    second = tmp_path / "second"
    shutil.copytree(first, second)
    for name in MODELS:
        for run in (first, second):
            train_model(bench_dir, run_dir=run, task=TASK, model=name, config=CONFIG)
        a = (first / "predictions" / TASK / f"{name}.csv").read_bytes()
        b = (second / "predictions" / TASK / f"{name}.csv").read_bytes()
        assert a == b, name
