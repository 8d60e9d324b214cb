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
from scoring.baselines.batching import iter_batches
from scoring.baselines.models import UNIMODAL, build_model, task_loss
from scoring.baselines.run import RunConfig, train_model
from scoring.baselines.training import FitOptions, fit
from scoring.baselines.workspace import Workspace

from .fixtures import make_tiny_benchmark

torch.set_num_threads(1)

MODELS = ("healnet", "flexmoe", "utde", "aug", "inforeg")
COMPLETE_MODALITY = ("utde", "aug", "inforeg")
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
    order = [MODEL_NAMES.index(n) for n in MODELS]
    assert order == sorted(order)
    assert max(order[:2]) < min(order[2:])


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


@pytest.mark.parametrize("name", COMPLETE_MODALITY)
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


# -- auxiliary objectives and gradient modulation -------------------------------------------


def test_flexmoe_routes_by_modality_combination_and_balances_the_load():
    """A unit without an image goes wholly to the EHR-only combination's expert and takes
    its image tokens from the bank; full units use top-2 of the router; the load-balancing
    loss is finite, about 1 or more, and reaches the router."""
    from scoring.baselines.strategies.flexmoe import BOTH, EHR_ONLY, TOP_K

    m = _model("flexmoe").eval()
    b = _batch()
    _, combination, route = m._forward(b)
    assert combination.tolist() == [BOTH, EHR_ONLY, BOTH]
    w = route["weights"]
    assert torch.allclose(w.sum(dim=-1), torch.ones(w.shape[:2]))
    assert torch.equal(w[1], torch.zeros_like(w[1]).index_fill_(1, torch.tensor([EHR_ONLY]), 1))
    assert ((w[0] > 0).sum(dim=-1) <= TOP_K).all()
    _, aux = m.auxiliary_losses(b)
    lb = aux["load_balancing"]
    assert torch.isfinite(lb) and float(lb.detach()) >= 0.99
    lb.backward()
    assert m.experts.router.weight.grad.abs().sum() > 0
    m.zero_grad()
    m(b)[1].sum().backward()  # the bank stands in for the missing image
    assert m.bank.grad[EHR_ONLY, 1].abs().sum() > 0 and not m.bank.grad[:, 0].any()


def test_aug_gives_a_learner_to_the_weaker_modality_and_keeps_it_in_the_checkpoint():
    from scoring.baselines.strategies.aug import EHR, IMAGE

    m = _model("aug").train()
    b = _batch()
    loss = m.training_loss(b)
    assert torch.isfinite(loss)
    m.adjust_gradients(1)
    m._scores, m._score_weight = [0.9, 0.5], 1.0  # the EHR far ahead after epoch 1
    m.adjust_gradients(2)
    assert m.learners.tolist() == [0, 1]
    # The new learner is in the prediction and in the boosting loss, with gradients.
    m.zero_grad()
    m.training_loss(b).backward()
    assert m.boost[IMAGE][0].weight.grad.abs().sum() > 0
    assert m.boost[EHR][0].weight.grad is None
    again = _model("aug", seed=3)
    again.load_state_dict(m.state_dict())
    assert again.learners.tolist() == [0, 1]
    m.eval(), again.eval()
    with torch.no_grad():
        assert torch.equal(m(b), again(b))


def test_aug_assigns_only_at_its_checks_and_not_when_balanced():
    from scoring.baselines.strategies.aug import CHECK_EVERY

    m = _model("aug").train()
    for epoch in range(1, CHECK_EVERY + 2):
        m.adjust_gradients(epoch)
        m._scores, m._score_weight = [0.5, 0.9], 1.0  # the image ahead in every epoch
    # Checks after epoch 1 and epoch CHECK_EVERY: two learners for the EHR.
    assert m.learners.tolist() == [2, 0]
    m._scores = [0.5, 0.502]
    assert m.assign_learner() is None


def test_inforeg_pulls_only_the_prime_modality_back_during_acquisition():
    m = _model("inforeg").train()
    b = _batch()
    m.training_loss(b).backward()
    heads = dict(m.named_parameters())
    for name in ("head.weight", "head_ehr.weight", "head_img.weight"):
        assert heads[name].grad.abs().sum() > 0
    m.adjust_gradients(1)  # the epoch's start: the anchor is the current state
    with torch.no_grad():  # as if the encoders had moved since
        for p in m.parameters():
            p.add_(0.01)
    m.zero_grad()
    m.training_loss(b).backward()
    m._scores = {"ehr": 0.8, "image": 0.6}
    raw = {n: p.grad.clone() for n, p in m.named_parameters() if p.grad is not None}
    assert m.acquiring()
    m.adjust_gradients(1)
    beta = m.last_beta
    assert beta["image"] == 0 and beta["ehr"] == pytest.approx(0.2 / 1.4)
    for n, p in m.named_parameters():
        if n not in raw:
            continue
        if n.startswith("ehr."):
            assert torch.allclose(p.grad, raw[n] + beta["ehr"] * 0.01, atol=1e-6), n
        else:
            assert torch.equal(p.grad, raw[n]), n


def test_inforeg_stops_regulating_once_the_fisher_trace_settles():
    from scoring.baselines.strategies.inforeg import WINDOW

    m = _model("inforeg")
    m._traces = [1.0] * (2 * WINDOW)
    m._scores = {"ehr": 0.8, "image": 0.6}
    assert not m.acquiring() and m.regulation() == {"ehr": 0.0, "image": 0.0}
    m._traces = [1.0] * WINDOW + [2.0] * WINDOW
    assert m.acquiring() and m.regulation()["ehr"] > 0


# -- training on the tiny benchmark ---------------------------------------------------------

CONFIG = RunConfig(seed=5, epochs=2, patience=1, ehr_hidden=8, epoch_steps=600, threads=1)
TASK = "in-hospital-mortality"


@pytest.fixture(scope="module")
def bench_dir(tmp_path_factory):
    return make_tiny_benchmark(tmp_path_factory.mktemp("bench"), seed=11)


def _prediction_loss(model, data, ehr, images) -> float:
    """The task loss of the model's predictions over a labelled split (evaluation mode)."""
    model.eval()
    total, n = 0.0, 0
    with torch.no_grad():
        for b in iter_batches(data, ehr, images, batch_size=16):
            assert b.y is not None
            total += float(task_loss(model.kind, model(b), b.y)) * b.n_readouts
            n += b.n_readouts
    return total / n


@pytest.mark.slow
@pytest.mark.parametrize("name", MODELS)
def test_training_lowers_the_training_loss(bench_dir, name):
    """Eight epochs on the tiny benchmark: the task loss of the predictions on the training
    split, after each of the last two epochs, is below that of the untrained model (the
    training objective itself gains terms as AUG adds learners, so the prediction's loss is
    what is compared)."""
    torch.use_deterministic_algorithms(True)
    ws = Workspace.load(Benchmark.open(bench_dir), [TASK], image_size=32, max_hours=48)
    train, val = ws.data(TASK, "train"), ws.data(TASK, "val")
    torch.manual_seed(1)
    model = build_model(name, kind="binary", out_dim=1, ehr_hidden=16, cxr_encoder="small")
    args = (train, ws.ehr["train"], ws.images)
    losses = [_prediction_loss(model, *args)]
    fit(model, train, val, ehr_train=ws.ehr["train"], ehr_val=ws.ehr["val"], images=ws.images,
        options=FitOptions(lr=2e-3, epochs=8, patience=8, batch_size=4, seed=2),
        report=lambda _rec: losses.append(_prediction_loss(model, *args)))  # fmt: skip
    assert len(losses) == 9 and np.isfinite(losses).all()
    assert max(losses[-2:]) < losses[0], losses


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
