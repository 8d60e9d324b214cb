"""Batches from :class:`~scoring.baselines.data.TaskData`: order, padding, image inputs.

Training order is a seeded permutation of the sequences (optionally only as many as fit a
budget of EHR rows per epoch), grouped into chunks whose sequences are sorted by length
before being cut into batches (less padding), with the batches then shuffled; the same seed
gives the same batches. Evaluation goes through the
sequences by length; predictions are put back in unit order by ``Batch.units``.

Training images get a random shift of up to ``size / 16`` pixels (reflect padding), drawn
from a seeded generator.
"""

from __future__ import annotations

from collections.abc import Iterator

import numpy as np
import torch
import torch.nn.functional as F

from scoring.baselines.batch import Batch
from scoring.baselines.data import ImageCache, SplitEHR, TaskData

CHUNK_BATCHES = 16


def batch_order(
    data: TaskData,
    *,
    batch_size: int,
    rng: np.random.Generator | None = None,
    max_steps: int | None = None,
) -> list[np.ndarray]:
    """Sequence indices per batch: shuffled and length-bucketed with ``rng``, else by length.

    With ``max_steps`` (training only) an epoch takes the first sequences of the seeded
    permutation whose rows add up to at most that many (at least one sequence).
    """
    lengths = data.seq_len
    if rng is None:
        order = np.argsort(lengths, kind="stable")
        return [order[i : i + batch_size] for i in range(0, len(order), batch_size)]
    perm = rng.permutation(data.n_sequences)
    if max_steps is not None:
        k = int(np.searchsorted(np.cumsum(lengths[perm]), max_steps, side="right"))
        perm = perm[: max(k, 1)]
    batches: list[np.ndarray] = []
    chunk = batch_size * CHUNK_BATCHES
    for i in range(0, len(perm), chunk):
        part = perm[i : i + chunk]
        part = part[np.argsort(lengths[part], kind="stable")]
        batches += [part[j : j + batch_size] for j in range(0, len(part), batch_size)]
    return [batches[i] for i in rng.permutation(len(batches))]


def _step_images(
    data: TaskData, seqs: np.ndarray, ro: np.ndarray, local_seq: np.ndarray, t_max: int
) -> np.ndarray:
    """Image available at each row: with ``carry``, each unit's image from its row on,
    carried forward (-1 before the first unit); otherwise the unit's image at every row."""
    b = len(seqs)
    if not data.carry:
        step = np.full((b, t_max), -1, dtype=np.int64)
        step[local_seq, :] = data.ro_img[ro][:, None]
        return step
    vals = np.full((b, t_max), -1, dtype=np.int64)
    marked = np.full((b, t_max), -1, dtype=np.int64)
    pos = data.ro_pos[ro]
    vals[local_seq, pos] = data.ro_img[ro]
    marked[local_seq, pos] = pos
    last = np.maximum.accumulate(marked, axis=1)
    rows = np.arange(b)[:, None]
    return np.where(last >= 0, vals[rows, np.maximum(last, 0)], -1)


def _shift(images: torch.Tensor, gen: torch.Generator) -> torch.Tensor:
    size = images.shape[-1]
    pad = max(1, size // 16)
    padded = F.pad(images, (pad, pad, pad, pad), mode="reflect")
    offs = torch.randint(0, 2 * pad + 1, (images.shape[0], 2), generator=gen)
    return torch.stack(
        [padded[i, :, oy : oy + size, ox : ox + size] for i, (oy, ox) in enumerate(offs.tolist())]
    )


def make_batch(
    data: TaskData,
    seqs: np.ndarray,
    ehr: SplitEHR,
    images: ImageCache,
    *,
    augment: torch.Generator | None = None,
    keep: tuple[float, np.random.Generator] | None = None,
) -> Batch:
    """Pad the sequences, gather their read-outs and the distinct images they use.

    ``keep = (fraction, rng)`` keeps a seeded random share of the read-outs (at least one):
    training on a sample of the hourly rows of each stay. The images available at each row
    still come from every unit.
    """
    seqs = np.asarray(seqs, dtype=np.int64)
    b = len(seqs)
    lens = data.seq_len[seqs]
    t_max = int(lens.max())
    x = np.zeros((b, t_max, ehr.rows.shape[1]), dtype=np.float32)
    for i, s in enumerate(seqs):
        off, lead = int(data.seq_offset[s]), int(data.seq_lead[s])
        x[i, lead : lens[i]] = ehr.rows[off : off + lens[i] - lead]
    ro = data.readouts_of(seqs)
    local = np.empty(data.n_sequences, dtype=np.int64)
    local[seqs] = np.arange(b)
    local_seq = local[data.ro_seq[ro]]
    step = _step_images(data, seqs, ro, local_seq, t_max)
    if keep is not None and keep[0] < 1.0 and len(ro) > 1:
        chosen = keep[1].random(len(ro)) < keep[0]
        chosen[keep[1].integers(len(ro))] = True
        ro, local_seq = ro[chosen], local_seq[chosen]
    used = np.unique(np.concatenate([data.ro_img[ro], step.reshape(-1)]))
    # Images in dicom_id order, so a batch does not depend on the order they were cached in.
    used = np.asarray(
        sorted(used[used >= 0].tolist(), key=images.names.__getitem__), dtype=np.int64
    )
    # Global cache index -> index in this batch; the extra last entry maps -1 to -1.
    lut = np.full(len(images) + 1, -1, dtype=np.int64)
    lut[used] = np.arange(len(used))
    ro_img = lut[data.ro_img[ro]]
    step_img = lut[step]
    px = torch.from_numpy(images.array[used].astype(np.float32) / 255.0).unsqueeze(1)
    px = (px - images.mean) / images.std
    if augment is not None and px.shape[0]:
        px = _shift(px, augment)
    y = None
    if data.y is not None:
        y = torch.from_numpy(np.ascontiguousarray(data.y[ro]))
    return Batch(
        x=torch.from_numpy(x),
        images=px,
        ro_seq=torch.from_numpy(local_seq),
        ro_pos=torch.from_numpy(data.ro_pos[ro]),
        ro_img=torch.from_numpy(ro_img),
        step_img=torch.from_numpy(step_img),
        y=y,
        units=torch.from_numpy(data.ro_unit[ro]),
    )


def iter_batches(
    data: TaskData,
    ehr: SplitEHR,
    images: ImageCache,
    *,
    batch_size: int,
    rng: np.random.Generator | None = None,
    augment: torch.Generator | None = None,
) -> Iterator[Batch]:
    for seqs in batch_order(data, batch_size=batch_size, rng=rng):
        yield make_batch(data, seqs, ehr, images, augment=augment)
