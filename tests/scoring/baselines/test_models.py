"""Forward passes of every baseline on small random batches, with and without images."""

import pytest
import torch

from scoring.baselines import MODEL_NAMES
from scoring.baselines.batch import Batch
from scoring.baselines.models import UNIMODAL, build_model

torch.set_num_threads(1)

KINDS = {"binary": 1, "multilabel": 5, "los": 10}
SIZE = 16


def _batch(*, hourly: bool, images: int = 2, seed: int = 0) -> Batch:
    """Three sequences of 6 rows. Per-unit form: one read-out each (unit 1 has no image);
    hourly form: read-outs at rows 2..5 of every sequence, images appearing over time."""
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(3, 6, 76, generator=g)
    px = torch.randn(images, 1, SIZE, SIZE, generator=g)
    if not hourly:
        ro_img = torch.tensor([0, -1, 1 if images > 1 else -1])
        if images == 0:
            ro_img = torch.full((3,), -1)
        step = ro_img.view(3, 1).expand(3, 6).clone()
        return Batch(x=x, images=px, ro_seq=torch.arange(3), ro_pos=torch.tensor([5, 3, 5]),
                     ro_img=ro_img, step_img=step)  # fmt: skip
    seq = torch.arange(3).repeat_interleave(4)
    pos = torch.arange(2, 6).repeat(3)
    img = torch.full((12,), -1)
    step = torch.full((3, 6), -1)
    if images:
        img[2:4] = 0  # sequence 0: image 0 from row 4 on
        step[0, 4:] = 0
        img[8:12] = images - 1  # sequence 2: an image from row 2 on
        step[2, 2:] = images - 1
    return Batch(x=x, images=px, ro_seq=seq, ro_pos=pos, ro_img=img, step_img=step)


def _model(name: str, kind: str, *, seed: int = 0):
    torch.manual_seed(seed)
    common = {"kind": kind, "out_dim": KINDS[kind], "ehr_hidden": 8, "cxr_encoder": "small"}
    unimodal = None
    if name not in UNIMODAL:
        unimodal = {m: build_model(m, **common) for m in UNIMODAL}
    return build_model(name, unimodal=unimodal, **common)


@pytest.mark.parametrize("name", MODEL_NAMES)
@pytest.mark.parametrize("kind", list(KINDS))
@pytest.mark.parametrize("hourly", [False, True])
def test_probabilities_have_one_row_per_readout_with_mixed_images(name, kind, hourly):
    """Every model gives finite probabilities for a batch mixing units with and without an
    image; length-of-stay rows are distributions over the ten buckets."""
    b = _batch(hourly=hourly)
    m = _model(name, kind).eval()
    with torch.no_grad():
        p = m.probabilities(b)
    assert p.shape == (b.n_readouts, KINDS[kind])
    assert torch.isfinite(p).all() and (p >= 0).all() and (p <= 1).all()
    if kind == "los":
        assert torch.allclose(p.sum(dim=1), torch.ones(b.n_readouts), atol=1e-5)


@pytest.mark.parametrize("name", MODEL_NAMES)
def test_a_batch_without_any_image_works(name):
    b = _batch(hourly=False, images=0)
    m = _model(name, "binary").eval()
    with torch.no_grad():
        p = m.probabilities(b)
    assert p.shape == (3, 1) and torch.isfinite(p).all()


@pytest.mark.parametrize("name", [n for n in MODEL_NAMES if n != "late"])
def test_training_step_reaches_the_trainable_parameters(name):
    """A backward pass through a mixed batch gives gradients; early fusion keeps its
    pretrained encoders frozen."""
    b = _batch(hourly=True)
    m = _model(name, "binary").train()
    logits = m(b)
    logits.sum().backward()
    grads = {n: p.grad for n, p in m.named_parameters()}
    assert any(g is not None and g.abs().sum() > 0 for g in grads.values())
    if name == "early":
        assert all(grads[n] is None for n in grads if n.startswith(("ehr.", "cxr.")))
        assert grads["head.weight"] is not None
    if name in ("joint", "medfuse", "daft", "mmtm"):
        assert grads["ehr.lstm1.weight_ih_l0"] is not None
        assert grads["cxr.stem.0.weight"] is not None


@pytest.mark.parametrize("name", MODEL_NAMES)
def test_readouts_without_an_image_ignore_image_pixels(name):
    """Changing the pixels changes nothing for units whose image is missing."""
    b = _batch(hourly=False)
    m = _model(name, "binary").eval()
    with torch.no_grad():
        p1 = m.probabilities(b)
        b.images = b.images + 3.0
        p2 = m.probabilities(b)
    assert torch.allclose(p1[1], p2[1])


@pytest.mark.parametrize("name", MODEL_NAMES)
def test_no_look_ahead_in_hourly_sequences(name):
    """A read-out at row p is unchanged when later EHR rows change."""
    b = _batch(hourly=True)
    m = _model(name, "binary").eval()
    with torch.no_grad():
        p1 = m.probabilities(b)
        b.x[:, 4:] = torch.randn(3, 2, 76)
        p2 = m.probabilities(b)
    early = b.ro_pos < 4
    assert torch.allclose(p1[early], p2[early], atol=1e-6)
    if name != "cxr":  # the image-only model ignores the EHR rows
        assert not torch.allclose(p1[~early], p2[~early])


def test_cxr_model_without_image_uses_the_learned_no_image_vector():
    b = _batch(hourly=False)
    m = _model("cxr", "binary").eval()
    with torch.no_grad():
        m.no_image.fill_(1.0)
        p1 = m.probabilities(b)[1]
        m.no_image.fill_(-1.0)
        p2 = m.probabilities(b)[1]
        expected = torch.sigmoid(m.head(m.no_image))
    assert not torch.allclose(p1, p2)
    assert torch.allclose(p2, expected)


def test_late_fusion_averages_only_where_there_is_an_image():
    b = _batch(hourly=False)
    m = _model("late", "binary").eval()
    with torch.no_grad():
        pe = m.ehr_model.probabilities(b)
        pc = m.cxr_model.probabilities(b)
        p = m.probabilities(b)
    assert torch.allclose(p[0], (pe[0] + pc[0]) / 2)
    assert torch.allclose(p[1], pe[1])
    with torch.no_grad():
        assert torch.allclose(torch.sigmoid(m(b)), p, atol=1e-6)


def test_medfuse_without_image_is_the_length_one_sequence():
    b = _batch(hourly=False)
    m = _model("medfuse", "binary").eval()
    with torch.no_grad():
        p = m(b)
        ehr = m.ehr(b.x)[b.ro_seq, b.ro_pos]
        out1 = m.fuse(ehr[1:2].unsqueeze(1))[0][:, -1]
    assert torch.allclose(p[1], m.head(out1)[0], atol=1e-6)


def test_fusion_models_start_from_the_unimodal_encoders():
    torch.manual_seed(0)
    common = {"kind": "binary", "out_dim": 1, "ehr_hidden": 8, "cxr_encoder": "small"}
    uni = {m: build_model(m, **common) for m in UNIMODAL}
    m = build_model("daft", unimodal=uni, **common)
    assert torch.equal(m.ehr.lstm2.weight_hh_l0, uni["ehr"].ehr.lstm2.weight_hh_l0)
    assert torch.equal(m.cxr.stem[0].weight, uni["cxr"].cxr.stem[0].weight)


def test_resnet34_layout():
    from scoring.baselines.encoders import build_cxr_encoder

    net = build_cxr_encoder("resnet34")
    assert [len(s) for s in net.stages] == [3, 4, 6, 3]
    assert net.out_channels == 512
    with torch.no_grad():
        assert net(torch.zeros(1, 1, 64, 64)).shape == (1, 512, 2, 2)


def test_unknown_model_is_refused():
    with pytest.raises(ValueError, match="unknown model"):
        build_model("transformer", kind="binary", out_dim=1)
