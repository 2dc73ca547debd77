"""From trials to samples: stimulus-wise splits, z-scoring with training statistics, repetitions.

The order matters and is fixed here: split by stimulus (no stimulus on both sides), z-score every
trial with statistics of the training trials only (globally or per session), then apply the
repetition policy (``average``: one sample per stimulus, the mean of its trials; ``single``: every
trial is a sample).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from clipsuite.brain.data import BrainData
from clipsuite.core.errors import InputError
from clipsuite.core.tabular import read_table

REPETITIONS = ("average", "single")


@dataclass(frozen=True)
class Stimulus:
    id: str
    image: Path | None
    caption: str
    category: str
    split: str
    brick_row: int | None = None  # the picture is this row of an image brick (HDF5, NSD's imgBrick) at ``image``


@dataclass(frozen=True)
class Samples:
    """Model-ready responses and the stimulus of each row."""

    responses: np.ndarray   # (n_samples, n_voxels) float32
    stimulus: np.ndarray    # (n_samples,) ids
    repeats: np.ndarray     # (n_samples,) trials averaged into each row


def read_stimuli(path: Path) -> dict[str, Stimulus]:
    """The stimulus table: ``stimulus`` plus optional ``image`` (relative to the table), ``caption``,
    ``category``, ``split``."""
    out: dict[str, Stimulus] = {}
    for record in read_table(path, required=("stimulus",)):
        sid = record.text("stimulus")
        if sid in out:
            raise record.error(f"stimulus '{sid}' is listed twice")
        image = record.optional_text("image")
        split = (record.optional_text("split") or "").lower()
        if split not in ("", "train", "test"):
            raise record.error(f"split must be train or test, got '{split}'")
        out[sid] = Stimulus(sid, path.parent / image if image else None, record.optional_text("caption") or "",
                            record.optional_text("category") or "", split)
    return out


def check_stimuli(data: BrainData, stimuli: dict[str, Stimulus], table: Path) -> None:
    """Every trial's stimulus must be described in the stimulus table."""
    unknown = sorted(set(data.stimulus.tolist()) - set(stimuli))
    if unknown:
        raise InputError(f"{table}: no row for stimulus '{unknown[0]}' used by the trials"
                         f"{f' (and {len(unknown) - 1} more)' if len(unknown) > 1 else ''}")


def split_trials(stimulus: np.ndarray, test_fraction: float = 0.2, seed: int = 0,
                 test_ids: set[str] | None = None) -> tuple[np.ndarray, np.ndarray]:
    """Boolean train/test masks over trials, by stimulus: a stimulus's trials are all on one side.

    ``test_ids`` (e.g. the stimulus table's ``split`` column) wins over a seeded random draw.
    """
    unique = np.unique(stimulus)
    if test_ids is None:
        if not 0 < test_fraction < 1:
            raise InputError(f"test fraction must be between 0 and 1, got {test_fraction}")
        n_test = max(1, int(round(test_fraction * len(unique))))
        test_ids = set(np.random.default_rng(seed).choice(unique, size=n_test, replace=False).tolist())
    test = np.isin(stimulus, list(test_ids))
    if test.all() or not test.any():
        raise InputError("the split leaves no training or no test trial")
    return ~test, test


@dataclass
class ZScore:
    """Per-voxel mean and std from training trials (one row per session, or one row for all)."""

    mean: np.ndarray
    std: np.ndarray
    sessions: np.ndarray | None  # session ids of the rows when per session

    @classmethod
    def fit(cls, data: BrainData, train: np.ndarray, per_session: bool = False) -> ZScore:
        x = data.responses
        if not per_session:
            return cls(*_moments(x[train]), None)
        ids = np.unique(data.session)
        means, stds = [], []
        for sid in ids:
            rows = train & (data.session == sid)
            if rows.sum() < 2:
                raise InputError(f"session {sid} has {int(rows.sum())} training trial(s): per-session z-scoring "
                                 "needs at least 2 (use global z-scoring)")
            mean, std = _moments(x[rows])
            means.append(mean)
            stds.append(std)
        return cls(np.stack(means), np.stack(stds), ids)

    def apply(self, data: BrainData) -> np.ndarray:
        if self.sessions is None:
            return ((data.responses - self.mean) / self.std).astype(np.float32)
        out = np.empty_like(data.responses)
        for row, sid in enumerate(self.sessions):
            rows = data.session == sid
            out[rows] = (data.responses[rows] - self.mean[row]) / self.std[row]
        return out


def _moments(x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    mean = x.mean(0, dtype=np.float64)
    std = x.std(0, dtype=np.float64)
    # a voxel constant within the training trials carries nothing: centre it, leave its scale
    std[std == 0] = 1.0
    return mean.astype(np.float32), std.astype(np.float32)


def apply_repetitions(responses: np.ndarray, stimulus: np.ndarray, rows: np.ndarray, policy: str) -> Samples:
    """The samples of the trials selected by ``rows`` under the repetition policy."""
    if policy not in REPETITIONS:
        raise InputError(f"unknown repetition policy '{policy}' (average or single)")
    x, ids = responses[rows], stimulus[rows]
    if policy == "single":
        return Samples(x, ids, np.ones(len(ids), dtype=np.int64))
    unique, inverse, counts = np.unique(ids, return_inverse=True, return_counts=True)
    sums = np.zeros((len(unique), x.shape[1]), dtype=np.float64)
    np.add.at(sums, inverse, x)
    return Samples((sums / counts[:, None]).astype(np.float32), unique, counts)


@dataclass(frozen=True)
class PrepConfig:
    """How trials become samples; stored with a fitted model so decoding repeats it exactly."""

    test_fraction: float = 0.2
    seed: int = 0
    use_table_split: bool = True     # the stimulus table's split column, when it has one
    per_session: bool = False
    train_repetitions: str = "single"
    test_repetitions: str = "average"


def prepare(data: BrainData, stimuli: dict[str, Stimulus] | None, config: PrepConfig) -> tuple[Samples, Samples]:
    """Train and test samples of a subject: split by stimulus, z-score with training stats, repeat policy."""
    test_ids = None
    if stimuli and config.use_table_split and any(s.split for s in stimuli.values()):
        test_ids = {s.id for s in stimuli.values() if s.split == "test"}
    train, test = split_trials(data.stimulus, config.test_fraction, config.seed, test_ids)
    z = ZScore.fit(data, train, config.per_session).apply(data)
    return (apply_repetitions(z, data.stimulus, train, config.train_repetitions),
            apply_repetitions(z, data.stimulus, test, config.test_repetitions))
