"""The strict-JSON refusal names where the NaN or infinity is."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from alignuniform import io


@pytest.mark.parametrize(
    "obj,where",
    [
        ({"x": -math.inf}, "x is -inf"),
        (
            {"runs": [{"ok": 1.0}, {"ok": 2.0, "uniformity": math.nan}]},
            r"runs\[1\]\.uniformity is nan",
        ),
        ({"a": np.array([1.0, np.inf])}, r"a\[1\] is inf"),
        ({"m": {"t": torch.tensor(float("nan"))}}, "m.t is nan"),
        ([1.0, (2.0, math.nan)], r"^cannot write strict JSON: \[1\]\[1\] is nan"),
        (math.nan, "the value is nan"),
    ],
)
def test_the_error_names_the_key_holding_the_nan(tmp_path, obj, where):
    with pytest.raises(ValueError, match=where):
        io.write_json(tmp_path / "r.json", obj)
    assert not (tmp_path / "r.json").exists()
