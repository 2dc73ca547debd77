"""Mean and sample standard deviation over seeds: the same numbers as numpy's (ddof=1)."""

from __future__ import annotations

import numpy as np
import pytest

from clipsuite.core.seeds import group_over_seeds, mean_sd


def test_mean_sd_matches_numpy_and_one_seed_has_no_spread() -> None:
    values = [71.2, 68.4, 70.0, 73.9]
    mean, sd = mean_sd(values)
    assert mean == pytest.approx(np.mean(values)) and sd == pytest.approx(np.std(values, ddof=1))
    assert mean_sd([5.0]) == (5.0, 0.0)
    with pytest.raises(ValueError):
        mean_sd([])


def test_groups_keep_the_order_rows_first_appear() -> None:
    rows = [("coop", 1), ("zeroshot", 1), ("coop", 2), ("zeroshot", 2)]
    assert list(group_over_seeds(rows, lambda r: r[0])) == ["coop", "zeroshot"]
    assert group_over_seeds(rows, lambda r: r[0])["coop"] == [("coop", 1), ("coop", 2)]
