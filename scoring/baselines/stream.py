"""A trained baseline served through the streaming gateway (protocol ``medmod-stream``).

``python -m scoring.baselines serve --run DIR --task T --model M`` loads one checkpoint and
the run's preprocessing, and nothing else: it never opens a benchmark. Everything it
predicts from comes in the gateway's step messages, through the participant helper that
the template model ships (``docker/template-model/model/medmod_stream.py``).

The inputs are those of the batch path (:mod:`scoring.baselines.data`), built from what the
gateway has revealed at each prediction time:

- in-hospital mortality and phenotyping: one sequence per unit, the stay's first 48 hours or
  its last ``max_hours`` hours, run through the whole model at the unit's step;
- decompensation, length of stay and radiology: the EHR encoder's recurrent state is kept
  per stay and advanced over the hours each step reveals (an all-zero start row first for
  radiology), so a stay's history is read once, not once per prediction time. The read-out
  at time ``t`` is the state after the hours complete at ``t``. MMTM, which mixes the image
  into the recurrence, also keeps the running mean of its first layer's states and the image
  carried along the stay's rows.

The CNN's feature maps are computed once per image (the model is in evaluation mode, so
they do not change) and handed to the model with the batch (``Batch.maps``), the encoder
states likewise (``Batch.ehr_ro``): the models' heads run unchanged. The predictions equal
the batch path's to float rounding (tests/scoring/test_baselines_stream.py).
"""

from __future__ import annotations

import math
import sys
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch.nn.utils.rnn import pack_padded_sequence, pad_packed_sequence

from benchmark_data.tasks import Task, get_task
from benchmark_data.variables import N_FEATURES
from scoring.baselines.artifacts import checkpoint_path, load_checkpoint, read_manifest
from scoring.baselines.batch import Batch
from scoring.baselines.data import IHM_HOURS, EHRNorm, decode_image
from scoring.baselines.encoders import EHREncoder, ResNet, pool
from scoring.baselines.models import MMTM, Baseline, LateFusion, UniCXR, UniEHR, cxr_of, ehr_of
from scoring.baselines.predict import prediction_columns

# The participant helper, a single standard-library file shipped with the template model.
HELPER_DIR = Path(__file__).resolve().parents[2] / "docker" / "template-model" / "model"


def encoders(model: Baseline) -> tuple[EHREncoder | None, ResNet | None]:
    """The EHR encoder and the CNN whose outputs a model reads (late fusion: those of the
    unimodal models it averages)."""
    if isinstance(model, LateFusion):
        return model.ehr_model.ehr, model.cxr_model.cxr
    if isinstance(model, UniEHR):
        return model.ehr, None
    if isinstance(model, UniCXR):
        return None, model.cxr
    return ehr_of(model), cxr_of(model)


class _StayState:
    """What the predictor keeps for one stay of an hourly task or radiology."""

    __slots__ = ("rows", "h1", "c1", "h2", "c2", "total", "z", "image")

    def __init__(self, hidden: int, squeeze: int) -> None:
        self.rows = 0  # sequence rows consumed, the start row included
        zero = torch.zeros(hidden)
        self.h1, self.c1, self.h2, self.c2 = zero, zero, zero, zero
        self.total = zero  # MMTM: sum of the first layer's states so far
        self.z = torch.zeros(squeeze)  # MMTM: squeeze vector at the last row
        self.image: Any = None  # MMTM: the image carried along the rows (helper Image)


class StreamPredictor:
    """``predictor(batch) -> {column: values}`` for the helper's batches."""

    def __init__(
        self,
        model: Baseline,
        task: Task,
        *,
        preprocessing: dict[str, Any],
        max_hours: int,
    ) -> None:
        self.model = model.eval()
        self.task = task
        self.columns = prediction_columns(task)
        self.norm = EHRNorm.from_dict(preprocessing["ehr_norm"])
        image = preprocessing["image"]
        self.image_size = int(image["size"])
        self.image_mean, self.image_std = float(image["mean"]), float(image["std"])
        self.max_hours = max_hours
        self.carry = task.hourly or task.slug == "radiology"
        self.lead = 1 if task.slug == "radiology" else 0
        self.ehr, self.cnn = encoders(model)
        self.mmtm = model if isinstance(model, MMTM) else None
        hidden = self.ehr.hidden if self.ehr is not None else 0
        self.squeeze = self.mmtm.squeeze_size if self.mmtm is not None else 0
        self.hidden = hidden
        self._maps: dict[str, torch.Tensor] = {}

    # -- inputs ------------------------------------------------------------------------

    def _rows(self, stay: Any, start: int, stop: int) -> np.ndarray:
        """Normalised discretized hours ``start .. stop - 1`` of a helper ``Stay``."""
        if stop <= start:
            return np.zeros((0, N_FEATURES), dtype=np.float32)
        raw = np.frombuffer(
            stay.discretized, dtype=np.float32, count=(stop - start) * N_FEATURES,
            offset=start * N_FEATURES * 4,
        ).reshape(-1, N_FEATURES).copy()  # fmt: skip
        return self.norm.apply(raw)

    def _image_maps(self, images: list[Any]) -> tuple[list[str], torch.Tensor | None]:
        """Tokens and feature maps ``(K, C, h, w)`` of the distinct images given."""
        if self.cnn is None:
            return [], None
        tokens = sorted({im.token for im in images})
        new = [im for im in {im.token: im for im in images}.values() if im.token not in self._maps]
        if new:
            px = np.stack([decode_image(im.png, size=self.image_size) for im in new])
            x = torch.from_numpy(px.astype(np.float32) / 255.0).unsqueeze(1)
            x = (x - self.image_mean) / self.image_std
            maps = self.cnn(x)
            for im, m in zip(new, maps, strict=True):
                self._maps[im.token] = m
        if not tokens:
            return [], torch.zeros((0, self.cnn.out_channels, 1, 1))
        return tokens, torch.stack([self._maps[t] for t in tokens])

    # -- one step ----------------------------------------------------------------------

    @torch.no_grad()
    def __call__(self, batch: Any) -> dict[str, list[float]]:
        units = batch.units
        images = [u.image for u in units if u.image is not None]
        if self.carry and self.mmtm is not None:  # the images the stays' rows carry so far
            carried = (u.stay.state.get("baseline") for u in units)
            images += [st.image for st in carried if st is not None and st.image is not None]
        tokens, maps = self._image_maps(images)
        index = {t: i for i, t in enumerate(tokens)}
        ro_img = torch.tensor(
            [index.get(u.image.token, -1) if u.image is not None else -1 for u in units],
            dtype=torch.int64,
        )
        n = len(units)
        if self.carry:
            ehr_ro = self._advance(batch, maps, index)
            x, ro_pos = torch.zeros(n, 1, N_FEATURES), torch.zeros(n, dtype=torch.int64)
            step_img = ro_img.unsqueeze(1)
        else:
            ehr_ro = None
            x, ro_pos = self._windows(units)
            step_img = ro_img.unsqueeze(1).expand(-1, x.shape[1])
        b = Batch(
            x=x,
            images=torch.zeros((len(tokens), 1, 1, 1)),
            ro_seq=torch.arange(n),
            ro_pos=ro_pos,
            ro_img=ro_img,
            step_img=step_img.contiguous(),
            ehr_ro=ehr_ro,
            maps=maps,
        )
        p = self.model.probabilities(b).double().numpy()
        return {c: p[:, j].tolist() for j, c in enumerate(self.columns)}

    def _windows(self, units: list[Any]) -> tuple[torch.Tensor, torch.Tensor]:
        """One sequence per unit (mortality, phenotyping), padded at the end."""
        seqs = []
        for u in units:
            hours = u.stay.hours
            if self.task.slug == "in-hospital-mortality":
                start, stop = 0, min(hours, IHM_HOURS)
            else:
                start, stop = max(0, hours - self.max_hours), hours
            rows = self._rows(u.stay, start, stop)
            if len(rows) == 0:  # no hour yet: one all-zero start row, as the batch path
                rows = np.zeros((1, N_FEATURES), dtype=np.float32)
            seqs.append(rows)
        lens = [len(r) for r in seqs]
        x = np.zeros((len(seqs), max(lens), N_FEATURES), dtype=np.float32)
        for i, r in enumerate(seqs):
            x[i, : len(r)] = r
        return torch.from_numpy(x), torch.tensor(lens, dtype=torch.int64) - 1

    def _advance(
        self, batch: Any, maps: torch.Tensor | None, index: dict[str, int]
    ) -> torch.Tensor | None:
        """Advance each asked stay's recurrent state to the step's time; the state per unit
        (for MMTM with its squeeze vector), or None for a model without EHR input."""
        if self.ehr is None:
            return None
        hours_done = math.floor(batch.time)
        states: list[_StayState] = []
        new_rows: list[np.ndarray] = []
        unit_image: list[Any] = []
        seen: dict[str, int] = {}
        for u in batch.units:
            stay = u.stay
            if stay.token not in seen:
                st = stay.state.get("baseline")
                if st is None:
                    st = stay.state["baseline"] = _StayState(self.hidden, self.squeeze)
                target = min(hours_done, stay.hours) + self.lead
                done = st.rows - self.lead if st.rows else 0
                rows = self._rows(stay, done, target - self.lead)
                if self.lead and st.rows == 0:
                    rows = np.concatenate([np.zeros((1, N_FEATURES), np.float32), rows])
                seen[stay.token] = len(states)
                states.append(st)
                new_rows.append(rows)
                unit_image.append(None)
            # The image carried from the read-out row on: that of the stay's last unit here.
            unit_image[seen[stay.token]] = u.image
        self._run(states, new_rows, unit_image, maps, index)
        for st, image in zip(states, unit_image, strict=True):
            st.image = image
        out = []
        for u in batch.units:
            st = states[seen[u.stay.token]]
            out.append(torch.cat([st.h2, st.z]) if self.mmtm is not None else st.h2)
        return torch.stack(out)

    def _run(
        self,
        states: list[_StayState],
        new_rows: list[np.ndarray],
        unit_image: list[Any],
        maps: torch.Tensor | None,
        index: dict[str, int],
    ) -> None:
        """One pass of the encoder over the new rows of the stays that have some."""
        live = [i for i, r in enumerate(new_rows) if len(r)]
        if not live:
            return
        lens = torch.tensor([len(new_rows[i]) for i in live], dtype=torch.int64)
        x = np.zeros((len(live), int(lens.max()), N_FEATURES), dtype=np.float32)
        for j, i in enumerate(live):
            x[j, : len(new_rows[i])] = new_rows[i]
        st = [states[i] for i in live]

        def hc(a: str, b: str) -> tuple[torch.Tensor, torch.Tensor]:
            return (
                torch.stack([getattr(s, a) for s in st]).unsqueeze(0),
                torch.stack([getattr(s, b) for s in st]).unsqueeze(0),
            )

        assert self.ehr is not None
        packed = pack_padded_sequence(
            torch.from_numpy(x), lens, batch_first=True, enforce_sorted=False
        )
        out1, (h1, c1) = self.ehr.lstm1(packed, hc("h1", "c1"))
        if self.mmtm is None:
            _, (h2, c2) = self.ehr.lstm2(out1, hc("h2", "c2"))
        else:
            h2, c2 = self._mmtm_rows(out1, lens, st, [unit_image[i] for i in live], maps, index)
        for j, s in enumerate(st):
            s.h1, s.c1, s.h2, s.c2 = h1[0, j], c1[0, j], h2[0, j], c2[0, j]
            s.rows += int(lens[j])

    def _mmtm_rows(
        self,
        out1: Any,
        lens: torch.Tensor,
        st: list[_StayState],
        images: list[Any],
        maps: torch.Tensor | None,
        index: dict[str, int],
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """MMTM between the layers, row by row as in ``MMTM.forward``: the causal mean of
        the first layer's states, the image available at each row, the gate."""
        m = self.mmtm
        assert m is not None and maps is not None
        h1, _ = pad_packed_sequence(out1, batch_first=True)  # (B, L, h)
        b, length = h1.shape[0], h1.shape[1]
        before = torch.tensor([s.rows for s in st], dtype=h1.dtype)
        steps = before.view(-1, 1) + torch.arange(1, length + 1, dtype=h1.dtype).view(1, -1)
        total = torch.stack([s.total for s in st]).unsqueeze(1) + h1.cumsum(dim=1)
        ehr_sq = total / steps.unsqueeze(2)
        pooled = pool(maps)
        table = torch.cat([pooled, m.no_image_squeeze.unsqueeze(0)], dim=0)
        missing = pooled.shape[0]

        def row(image: Any) -> int:
            return missing if image is None else index[image.token]

        # Rows before the last new one carry the stay's earlier image; the last new row
        # (the read-out's) takes the image of this step's unit.
        idx = torch.full((b, length), missing, dtype=torch.int64)
        for j, s in enumerate(st):
            n = int(lens[j])
            idx[j, : n - 1] = row(s.image)
            idx[j, n - 1] = row(images[j])
        z, gated = m.mix(h1, ehr_sq, table[idx])
        packed = pack_padded_sequence(gated, lens, batch_first=True, enforce_sorted=False)
        _, (h2, c2) = m.ehr.lstm2(packed, (torch.stack([s.h2 for s in st]).unsqueeze(0),
                                            torch.stack([s.c2 for s in st]).unsqueeze(0)))  # fmt: skip
        last = lens - 1
        for j, s in enumerate(st):
            s.total = total[j, last[j]]
            s.z = z[j, last[j]]
        return h2, c2


def serve(run_dir: str | Path, task: str, model_name: str, *, threads: int = 1) -> int:
    """Serve one trained model of a run through the gateway until its end message."""
    sys.path.insert(0, str(HELPER_DIR))
    import medmod_stream  # the participant helper (standard library only)

    torch.set_num_threads(max(1, threads))
    run = Path(run_dir)
    manifest = read_manifest(run)
    if task not in manifest["tasks"] or model_name not in manifest["tasks"][task]:
        raise SystemExit(f"{run} holds no trained {model_name} model for {task}")
    model = load_checkpoint(checkpoint_path(run, task, model_name))
    predictor = StreamPredictor(
        model,
        get_task(task),
        preprocessing=manifest["preprocessing"],
        max_hours=int(manifest["config"]["max_hours"]),
    )

    def setup(hello: dict[str, Any]) -> None:
        if hello["task"] != task:
            raise SystemExit(f"the gateway asks for {hello['task']}, this model predicts {task}")

    return int(medmod_stream.run(predictor, setup=setup))


__all__ = ["StreamPredictor", "encoders", "serve"]
