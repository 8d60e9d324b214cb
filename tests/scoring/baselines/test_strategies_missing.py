"""CareBench's missing-modality strategies (DrFuse, ShaSpec, M3Care, SMIL, UMSE).

Output shapes for the three kinds of task, the explicit path of a unit without an image,
batch independence, the auxiliary losses, and (slow) real training on the tiny benchmark:
the training loss falls, and two runs with the same seed write identical prediction files.
"""

from __future__ import annotations

import json
import shutil

import pytest
import torch

from scoring.baselines.batch import Batch
from scoring.baselines.models import UNIMODAL, build_model, task_loss
from scoring.baselines.run import RunConfig, train_model
from scoring.baselines.strategies import MISSING_MODALITY, STRATEGIES

from .fixtures import make_tiny_benchmark

torch.set_num_threads(1)

MINE = ("drfuse", "shaspec", "m3care", "smil", "umse")
NAMES = [n for n in MINE if n in STRATEGIES]
KINDS = {"binary": 1, "multilabel": 25, "los": 10}
SIZE = 16
HIDDEN = 8

# Parameters a batch without any image must train (the path that replaces the image).
MISSING_PATH = {
    "drfuse": ["ehr_shared.", "head_shared."],
    "shaspec": ["shared.", "fuse_cxr."],
    "m3care": ["no_image"],
    "smil": ["priors", "prior_weights."],
    "umse": ["bottleneck", "ehr_token."],
}
# Per auxiliary loss: parameters it must reach.
AUXILIARY = {
    "drfuse": {
        "heads": ["head_ehr.", "head_shared.", "head_cxr."],
        "shared": ["ehr_shared.", "cxr_shared."],
        "apart_ehr": ["ehr_specific.", "ehr_shared."],
        "apart_cxr": ["cxr_specific.", "cxr_shared."],
        "attention": ["queries", "keys."],
    },
    "shaspec": {
        "domain": ["domain.", "ehr_specific.", "cxr_specific."],
        "distance": ["shared.", "cxr_adapter."],
    },
    "m3care": {"imputation": ["similarity.", "cxr_project."]},
    "smil": {"reconstruction": ["priors", "prior_weights."], "distillation": ["priors"]},
    "umse": {},
}


def _batch(*, hourly: bool, images: bool = True, seed: int = 0) -> Batch:
    """Four sequences of 7 rows. Per-unit form: one read-out each, units 0 and 2 with an
    image; hourly form: read-outs at rows 2..6, images appearing over time in sequences 0
    and 2."""
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(4, 7, 76, generator=g)
    px = torch.randn(2, 1, SIZE, SIZE, generator=g) if images else torch.zeros(0, 1, SIZE, SIZE)
    if not hourly:
        ro_img = torch.tensor([0, -1, 1, -1]) if images else torch.full((4,), -1)
        step = ro_img.view(4, 1).expand(4, 7).clone()
        return Batch(x=x, images=px, ro_seq=torch.arange(4), ro_pos=torch.tensor([6, 4, 6, 5]),
                     ro_img=ro_img, step_img=step)  # fmt: skip
    seq = torch.arange(4).repeat_interleave(5)
    pos = torch.arange(2, 7).repeat(4)
    img = torch.full((20,), -1)
    step = torch.full((4, 7), -1)
    if images:
        img[3:5], step[0, 5:] = 0, 0  # sequence 0: image 0 from row 5 on
        img[10:15], step[2, 2:] = 1, 1  # sequence 2: image 1 from row 2 on
    return Batch(x=x, images=px, ro_seq=seq, ro_pos=pos, ro_img=img, step_img=step)


def _labels(kind: str, n: int, seed: int = 1) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    if kind == "los":
        return torch.randint(0, 10, (n,), generator=g)
    if kind == "binary":
        return torch.randint(0, 2, (n,), generator=g).float()
    return torch.randint(0, 2, (n, KINDS[kind]), generator=g).float()


def _only(batch: Batch, seq: int) -> Batch:
    """The batch of one sequence alone, with its own images only."""
    keep = batch.ro_seq == seq
    used = sorted({int(i) for i in batch.step_img[seq].tolist() + batch.ro_img[keep].tolist()})
    used = [i for i in used if i >= 0]
    remap = torch.full((batch.images.shape[0] + 1,), -1)
    for new, old in enumerate(used):
        remap[old] = new
    return Batch(
        x=batch.x[seq : seq + 1],
        images=batch.images[used] if used else batch.images[:0],
        ro_seq=torch.zeros(int(keep.sum()), dtype=torch.int64),
        ro_pos=batch.ro_pos[keep],
        ro_img=remap[batch.ro_img[keep]],
        step_img=remap[batch.step_img[seq : seq + 1]],
    )


def _model(name: str, kind: str, *, seed: int = 0, dropout: float = 0.3):
    torch.manual_seed(seed)
    common = {"kind": kind, "out_dim": KINDS[kind], "ehr_hidden": HIDDEN, "cxr_encoder": "small"}
    unimodal = {m: build_model(m, **common) for m in UNIMODAL}
    return build_model(name, unimodal=unimodal, dropout=dropout, **common)


def _grads(model) -> dict[str, torch.Tensor | None]:
    return {n: p.grad for n, p in model.named_parameters()}


def _reached(grads: dict[str, torch.Tensor | None], prefix: str) -> bool:
    return any(
        g is not None and float(g.abs().sum()) > 0 for n, g in grads.items() if n.startswith(prefix)
    )


def test_the_strategies_are_registered_as_missing_modality_ones():
    assert list(MINE) == NAMES
    assert set(NAMES) <= MISSING_MODALITY
    order = list(STRATEGIES)
    complete = [order.index(n) for n in order if n not in MISSING_MODALITY]
    assert all(order.index(n) < min(complete, default=len(order)) for n in NAMES)


@pytest.mark.parametrize("name", NAMES)
@pytest.mark.parametrize("kind", list(KINDS))
@pytest.mark.parametrize("hourly", [False, True])
def test_one_row_of_probabilities_per_readout(name, kind, hourly):
    b = _batch(hourly=hourly)
    m = _model(name, kind).eval()
    with torch.no_grad():
        p = m.probabilities(b)
    assert p.shape == (b.n_readouts, KINDS[kind])
    assert torch.isfinite(p).all() and (p >= 0).all() and (p <= 1).all()
    if kind == "los":
        assert torch.allclose(p.sum(dim=1), torch.ones(b.n_readouts), atol=1e-5)
    assert p.std(dim=0).max() > 1e-6  # predictions differ between units


@pytest.mark.parametrize("name", NAMES)
def test_a_unit_without_an_image_ignores_the_images_of_others(name):
    """Units 1 and 3 have no image: their predictions stay the same when the other units'
    images change, when the others lose their images, and in a batch of their own."""
    b = _batch(hourly=False)
    m = _model(name, "multilabel").eval()
    with torch.no_grad():
        p = m.probabilities(b)
        b2 = _batch(hourly=False)
        b2.images = torch.randn(b2.images.shape, generator=torch.Generator().manual_seed(9))
        p2 = m.probabilities(b2)
        b3 = _batch(hourly=False, images=False)
        p3 = m.probabilities(b3)
    for unit in (1, 3):
        assert torch.allclose(p[unit], p2[unit], atol=1e-6)
        assert torch.allclose(p[unit], p3[unit], atol=1e-6)
    assert not torch.allclose(p[0], p2[0])  # the image of a unit that has one counts


@pytest.mark.parametrize("name", NAMES)
@pytest.mark.parametrize("hourly", [False, True])
def test_a_unit_predicted_alone_or_in_a_batch_gets_the_same_numbers(name, hourly):
    b = _batch(hourly=hourly)
    m = _model(name, "los").eval()
    with torch.no_grad():
        together = m.probabilities(b)
        for seq in range(4):
            alone = m.probabilities(_only(b, seq))
            assert torch.allclose(alone, together[b.ro_seq == seq], atol=1e-6), seq


@pytest.mark.parametrize("name", NAMES)
def test_the_missing_image_path_trains_its_own_parameters(name):
    """A batch without any image trains the EHR encoder and the parts that stand in for the
    image, and gives the CNN no gradient; a batch with images reaches the CNN."""
    b = _batch(hourly=True, images=False)
    b.y = _labels("binary", b.n_readouts)
    m = _model(name, "binary").train()
    m.training_loss(b).backward()
    grads = _grads(m)
    assert not _reached(grads, "cxr.")
    assert _reached(grads, "ehr.")
    for prefix in MISSING_PATH[name]:
        assert _reached(grads, prefix), prefix
    m.zero_grad(set_to_none=True)
    b = _batch(hourly=True)
    b.y = _labels("binary", b.n_readouts)
    m.training_loss(b).backward()
    assert _reached(_grads(m), "cxr.") and _reached(_grads(m), "ehr.")


@pytest.mark.parametrize("name", NAMES)
@pytest.mark.parametrize("kind", list(KINDS))
def test_auxiliary_losses_are_finite_and_reach_their_parameters(name, kind):
    b = _batch(hourly=True)
    b.y = _labels(kind, b.n_readouts)
    m = _model(name, kind, dropout=0.0).train()
    terms = m.losses(b)
    assert set(terms) == {"task", *AUXILIARY[name]}
    for term, value in terms.items():
        assert value.dim() == 0 and torch.isfinite(value), term
    total = m.training_loss(b)
    assert torch.isfinite(total)
    for term, prefixes in AUXILIARY[name].items():
        m.zero_grad(set_to_none=True)
        m.losses(b)[term].backward()
        grads = _grads(m)
        for prefix in prefixes:
            assert _reached(grads, prefix), (term, prefix)


@pytest.mark.parametrize("name", NAMES)
def test_prediction_needs_no_labels_and_the_task_loss_is_the_first_term(name):
    b = _batch(hourly=False)
    m = _model(name, "binary", dropout=0.0).eval()
    with torch.no_grad():
        logits = m(b)
        b.y = _labels("binary", b.n_readouts)
        assert torch.allclose(m.losses(b)["task"], task_loss("binary", logits, b.y))


def test_m3care_imputes_a_missing_image_from_its_bank_of_training_patients():
    """Training writes one bank entry per sequence with an image; prediction leaves the bank
    as it is; a unit without an image gets the image representation of the bank's patients
    (with one patient in the bank, exactly that patient's); the bank is part of the
    checkpoint."""
    m = _model("m3care", "binary")
    b = _batch(hourly=True)
    b.y = _labels("binary", b.n_readouts)
    m.eval()
    with torch.no_grad():
        empty = m.probabilities(b)
    assert not bool(m.bank_used.any())
    m.train()
    m.training_loss(b)
    assert int(m.bank_used.sum()) == 2 and int(m.bank_next) == 2  # sequences 0 and 2
    m.eval()
    bank = {k: v.clone() for k, v in m.state_dict().items() if k.startswith("bank_")}
    with torch.no_grad():
        filled = m.probabilities(b)
        m.losses(b)
    assert all(torch.equal(bank[k], v) for k, v in m.state_dict().items() if k in bank)
    no_image = b.ro_img < 0
    assert not torch.allclose(empty[no_image], filled[no_image])
    with torch.no_grad():
        m.bank_used[1:] = False
        state = m.ehr(b.x)[b.ro_seq, b.ro_pos]
        one = m.cxr_project(m.bank_img[:1]).expand(b.n_readouts, -1)
        assert torch.allclose(m.impute(state), one, atol=1e-6)
    again = _model("m3care", "binary", seed=3)
    again.load_state_dict(m.state_dict())
    assert torch.equal(again.bank_img, m.bank_img) and torch.equal(again.bank_used, m.bank_used)


# -- real training on the tiny benchmark ------------------------------------------------

# Small batches and every training stay in each epoch: enough steps for the loss to fall.
CONFIG = RunConfig(seed=11, epochs=6, patience=6, ehr_hidden=8, epoch_steps=None, batch_size=4,
                   stay_batch_size=4, threads=1)  # fmt: skip
TASK = "in-hospital-mortality"


@pytest.fixture(scope="module")
def bench_dir(tmp_path_factory):
    return make_tiny_benchmark(tmp_path_factory.mktemp("bench"), seed=7)


@pytest.fixture(scope="module")
def base_run(bench_dir, tmp_path_factory):
    """A run holding what the strategies build on: the radiology CXR model and the task's
    unimodal models."""
    run = tmp_path_factory.mktemp("runs") / "base"
    for task, model in (("radiology", "cxr"), (TASK, "ehr"), (TASK, "cxr")):
        train_model(bench_dir, run_dir=run, task=task, model=model, config=CONFIG)
    return run


@pytest.mark.slow
@pytest.mark.parametrize("name", NAMES)
def test_training_lowers_the_loss_and_is_reproducible(name, bench_dir, base_run, tmp_path):
    """Two runs with the same seed under deterministic algorithms write the same prediction
    file, byte for byte; the training loss falls over the epochs."""
    files = []
    for copy in ("a", "b"):
        run = tmp_path / copy
        shutil.copytree(base_run, run)
        entry = train_model(bench_dir, run_dir=run, task=TASK, model=name, config=CONFIG)
        files.append((run / entry["predictions"]).read_bytes())
    assert files[0] == files[1]
    log = [json.loads(line) for line in (run / "train_log.jsonl").read_text().splitlines()]
    losses = [r["train_loss"] for r in log if r["model"] == name]
    assert len(losses) == CONFIG.epochs
    assert losses[-1] < losses[0], losses
