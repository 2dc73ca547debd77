"""A held-out split is only read from a Karpathy JSON: elsewhere it would be the training data again."""

from __future__ import annotations

import pytest

from clipsuite.core.errors import InputError
from clipsuite.remote.held_out import check_held_out


@pytest.mark.parametrize("source", ["pairs.csv", "pairs.jsonl", "shards/{000..003}.tar", "class_folders"])
def test_sources_without_splits_refuse_an_eval_split(source):
    with pytest.raises(InputError, match="has no splits"):
        check_held_out(source, "train", "test")


def test_karpathy_json_and_separate_held_out_files_pass():
    check_held_out("dataset_rsicd.json", "train", "test")
    check_held_out("pairs.csv", "train", "test", eval_source="held_out.csv")  # its own file: its own rows
    check_held_out("pairs.csv", "train", None)  # nothing held out: nothing to check
    with pytest.raises(InputError, match="is the training split"):
        check_held_out("dataset_rsicd.json", "train", "train")
