"""The brain step of ``clipsuite demo``: a synthetic subject (NIfTI betas from tiny-CLIP embeddings of
shape stimuli), a ridge decoder scored by retrieval, and an encoding-model r map under ``out_dir/brain``."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from clipsuite.core.plugins import DemoStepResult


def run_demo_step(out_dir: Path, log: Callable[[str], None]) -> DemoStepResult:
    import numpy as np

    from clipsuite.brain import synthetic
    from clipsuite.brain.decoders import read_decoder
    from clipsuite.brain.encoding import fit_encoding, write_maps
    from clipsuite.brain.pipeline import (
        MLPFit,
        decode,
        decoding_metrics,
        fit_decoder,
        fit_mlp_decoder,
        load_prepared,
        subject_features,
    )
    from clipsuite.brain.prep import PrepConfig
    from clipsuite.brain.ridge import log_alphas
    from clipsuite.core.models import load_model
    from clipsuite.core.train import TrainConfig

    folder = Path(out_dir) / "brain"
    log("brain: writing a synthetic subject (3 sessions of NIfTI betas, mask, trial and stimulus tables)")
    config = synthetic.make_subject(folder / "subject", n_train=180, n_test=30)
    subject = load_prepared(config, PrepConfig())
    clip = load_model("tiny", device="cpu")
    features = subject_features(clip, subject, folder / "cache")
    alphas = log_alphas(1e-1, 1e5, 10)
    log("brain: ridge decoder voxels -> CLIP (one alpha per dimension, leave-one-out)")
    models, meta = read_decoder(fit_decoder(subject, features, alphas, "loo", folder / "decoder",
                                            {"model": "tiny"}).path)
    metrics = decoding_metrics(decode(models, meta, subject.test, str(config), subject), subject, features, clip)
    log("brain: MLP decoder (MindEye-style residual MLP; BiMixCo, then SoftCLIP) on the core Trainer")
    run = TrainConfig(output_dir=folder / "mlp.run", epochs=16, batch_size=32, lr=1e-3, weight_decay=1e-2,
                      checkpoint_every=0, progress=False, log_every=1)
    mlp, mlp_meta = read_decoder(fit_mlp_decoder(subject, features, folder / "mlp", {"model": "tiny"}, run,
                                                 MLPFit(hidden=256, blocks=2)).path)
    mlp_metrics = decoding_metrics(decode(mlp, mlp_meta, subject.test, str(config), subject), subject, features)
    log("brain: encoding model CLIP -> voxels, r map")
    rows = features.rows
    single = subject.test_trials
    result = fit_encoding(features.image[rows(subject.train.stimulus)], subject.train.responses,
                          features.image[rows(subject.test.stimulus)], subject.test.responses, alphas,
                          single_trials=(single.responses, single.stimulus),
                          n_repeats=int(np.round(subject.test.repeats.mean())))
    maps = write_maps(result, subject.data, folder / "encoding", "encoding r (tiny CLIP image features)")
    summary = {
        "image_retrieval": round(metrics["image_image_retrieval"], 4),
        "brain_retrieval": round(metrics["image_brain_retrieval"], 4),
        "retrieval_chance": round(1 / metrics["image_n_way"], 4),
        "mlp_image_retrieval": round(mlp_metrics["image_image_retrieval"], 4),
        "mlp_brain_retrieval": round(mlp_metrics["image_brain_retrieval"], 4),
        "encoding_median_r": round(result.summary()["median_r"], 4),
    }
    finding = (f"image retrieval {summary['image_retrieval']} with ridge, {summary['mlp_image_retrieval']} with "
               f"the MLP (chance {summary['retrieval_chance']}), encoding median r {summary['encoding_median_r']}")
    log(f"brain: {finding} -> {maps[-1].relative_to(out_dir)}")  # relative: the demo folder is renamed at the end
    return DemoStepResult("Brain decoding and encoding (clipsuite.brain)", [finding], summary,
                          files={"encoding r map (NIfTI)": maps[0], "MLP training metrics (JSONL)":
                                 folder / "mlp" / "metrics.jsonl"}, pictures={"encoding r": maps[-1]})
