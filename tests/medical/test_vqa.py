"""VQA-RAD / SLAKE loading, vocabularies, the MEVF and QCR heads, training that beats the baselines,
saving and asking, and bad input."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

from clipsuite.core.errors import InputError
from clipsuite.core.train import TrainConfig
from clipsuite.medical import synthetic
from clipsuite.medical.data import AnswerVocab, QuestionTokenizer, load_slake, load_vqa, load_vqa_rad
from clipsuite.medical.evaluate import vqa_accuracy
from clipsuite.medical.methods.vqa import MedVQA, VQAConfig
from clipsuite.medical.train_vqa import VQASettings, load_vqa_run, train_vqa

SMALL = {"patch_tokens": False, "word_dim": 32, "hidden": 48, "ae_size": 32, "ae_channels": 8}


def test_vqa_rad_split_types_and_vocab(vqa_root: Path) -> None:
    train, test = load_vqa_rad(vqa_root, "train"), load_vqa_rad(vqa_root, "test")
    assert {s.meta["phrase_type"] for s in test} == {"test_freeform"}
    assert not {s.image for s in train} & {s.image for s in test}
    answers = AnswerVocab.build(train)
    assert {"yes", "no"} <= set(answers.answers)
    assert answers.closed[answers.index("yes")] and not answers.opened[answers.index("yes")]
    assert answers.opened[answers.index("left")] and answers.index("never seen") == -1
    assert load_vqa(vqa_root, "test")[0].qid == test[0].qid
    # VQA-RAD has no validation split: 'val' is refused, not read as the training questions
    with pytest.raises(InputError, match="VQA-RAD split 'val': use train, test or all"):
        load_vqa(vqa_root, "val")


def test_slake_keeps_english_only(tmp_path: Path) -> None:
    synthetic.write_slake(tmp_path, n_images=6)
    train = load_slake(tmp_path, "train")
    raw = json.loads((tmp_path / "train.json").read_text())
    assert len(train) == sum(r["q_lang"] == "en" for r in raw) < len(raw)
    assert all(s.image.is_file() for s in train)
    assert load_vqa(tmp_path, "test")[0].image.parent.parent.name == "imgs"


def test_accuracy_split_by_answer_type() -> None:
    result = vqa_accuracy([0, 1, 2, 3], [0, 0, 2, -1], [True, True, False, False])
    assert result["closed"] == 50.0 and result["open"] == 50.0 and result["overall"] == 50.0


def test_qcr_routes_answers_to_its_branches() -> None:
    cfg = VQAConfig(head="qcr", visual_dim=16, n_answers=5, closed_answers=(0, 1), open_answers=(2, 3, 4),
                    vocab_size=10, word_dim=8, hidden=16, use_ae=False)
    model = MedVQA(cfg).eval()
    out = model(torch.randn(3, 2, 16), torch.randint(1, 10, (3, 12)))
    scores = model.answer_scores(out, route=torch.tensor([1, 0, 1]))
    assert torch.isinf(scores[0, 2:]).all() and torch.isfinite(scores[0, :2]).all()
    assert torch.isinf(scores[1, :2]).all() and torch.isfinite(scores[1, 2:]).all()
    loss = model.loss(out, torch.tensor([0, 3, -1]), torch.tensor([True, False, True]))
    assert {"loss", "vqa", "type"} <= set(loss) and loss["loss"].requires_grad


@pytest.mark.parametrize("head", ["mevf", "qcr"])
def test_training_beats_the_per_type_majority_answer(head: str, vqa_root: Path, tmp_path: Path) -> None:
    train, test = load_vqa_rad(vqa_root, "train"), load_vqa_rad(vqa_root, "test")
    config = TrainConfig(epochs=14, batch_size=32, lr=3e-3, optimizer="adam", progress=False, log_every=100,
                         checkpoint_every=10**9, seed=0)
    torch.manual_seed(0)
    run = train_vqa(train, tmp_path / head, "tiny", None, VQASettings(head=head, **SMALL), config, test, "cpu")
    # baseline: always the most common training answer of the question's type
    common = {t: max({s.answer for s in train if s.answer_type == t},
                     key=[s.answer for s in train if s.answer_type == t].count) for t in ("OPEN", "CLOSED")}
    floor = vqa_accuracy([0 if common[s.answer_type] == s.answer else 1 for s in test], [0] * len(test),
                         [s.answer_type == "CLOSED" for s in test])
    assert run.metrics["overall"] > floor["overall"] + 5, (run.metrics, floor)
    assert run.metrics["open"] > floor["open"] + 5, (run.metrics, floor)  # organ and side questions
    reloaded = load_vqa_run(tmp_path / head).evaluate(test)
    assert reloaded["overall"] == pytest.approx(run.metrics["overall"])
    answer = load_vqa_run(tmp_path / head).ask(test[0].image, "what organ is shown in this image?")
    assert answer["answer"] in {"lung", "brain", "liver"} or head == "mevf"
    with pytest.raises(InputError, match="at most 12"):
        run.ask(test[0].image, "is there a lesion in this image of the abdomen on the left or on the right side "
                               "of the patient?")


def test_bad_vqa_input(tmp_path: Path, vqa_root: Path) -> None:
    records = json.loads((vqa_root / "VQA_RAD Dataset Public.json").read_text())
    (tmp_path / "VQA_RAD Image Folder").mkdir()
    records[0]["image_name"] = "missing.jpg"
    (tmp_path / "VQA_RAD Dataset Public.json").write_text(json.dumps(records[:3]))
    with pytest.raises(InputError, match="entry 0: image 'missing.jpg' not found"):
        load_vqa_rad(tmp_path)
    (tmp_path / "VQA_RAD Dataset Public.json").write_text("[{]")
    with pytest.raises(InputError, match="malformed JSON"):
        load_vqa_rad(tmp_path)
    tokenizer = QuestionTokenizer.build(["is there a lesion?"], max_tokens=4)
    assert len(tokenizer.encode("is there a big lesion here?")) == 4  # training truncates as the papers
    with pytest.raises(InputError, match="at most 4"):
        tokenizer.encode("is there a big lesion here?", strict=True)
    with pytest.raises(InputError, match="no trained VQA checkpoint"):
        load_vqa_run(tmp_path)


def test_a_slake_split_file_is_read_only_as_its_own_split(tmp_path: Path) -> None:
    """load_vqa("train.json", "test") returned the training questions (the split word was ignored for a file),
    so `vqa train slake/train.json` scored its own training questions as the test split."""
    synthetic.write_slake(tmp_path, n_images=6)
    assert len(load_vqa(tmp_path / "train.json", "train")) == len(load_slake(tmp_path, "train"))
    assert [s.qid for s in load_vqa(tmp_path / "validate.json", "val")] == [s.qid for s in load_slake(tmp_path, "val")]
    for split in ("test", "val"):
        with pytest.raises(InputError, match="not SLAKE's"):
            load_vqa(tmp_path / "train.json", split)
    with pytest.raises(InputError, match="not SLAKE's 'train' split"):
        load_slake(tmp_path / "test.json", "train")
    with pytest.raises(InputError, match="SLAKE split 'all'"):
        load_vqa(tmp_path / "train.json", "all")
