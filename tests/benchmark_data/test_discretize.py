"""The hourly discretizer on hand-made stays (docs/benchmark-format.md, Discretized rows)."""

import numpy as np
import pandas as pd
import pytest

from benchmark_data.discretize import (
    ERR_UNKNOWN_CATEGORY,
    ERR_UNKNOWN_STAYS,
    discretize,
    discretize_split,
    encode_categories,
    split_index,
)
from benchmark_data.variables import N_FEATURES, N_VALUE_FEATURES, VARIABLES, feature_names

NAMES = feature_names()


def col(name: str) -> int:
    return NAMES.index(name)


def mask(variable: str) -> int:
    return N_VALUE_FEATURES + [v.name for v in VARIABLES].index(variable)


def stay() -> pd.DataFrame:
    """Heart rate twice in hour 0, none in hour 1, once in hour 2; eye opening in hour 1;
    capillary refill and coma total as numbers (as read back from CSV); one measurement
    before the stay and one after its last hour."""
    return pd.DataFrame(
        {
            "hours": [-0.5, 0.2, 0.7, 1.3, 2.1, 2.5, 4.2],
            "Heart Rate": [60.0, 80.0, 90.0, None, 100.0, None, 120.0],
            "Glascow coma scale eye opening": [None, None, None, "To Pain", None, None, None],
            "Capillary refill rate": [None, None, None, None, None, 1.0, None],
            "Glascow coma scale total": [None, None, 15, None, None, 9, None],
        }
    )


def test_shape_dtype_and_feature_order():
    x = discretize(stay(), 4)
    assert x.shape == (4, N_FEATURES) == (4, 76)
    assert x.dtype == np.float32
    assert len(NAMES) == 76 and NAMES[-17:] == [f"mask->{v.name}" for v in VARIABLES]


def test_last_value_in_the_hour_then_previous_value_then_normal():
    x = discretize(stay(), 4)
    assert x[:, col("Heart Rate")].tolist() == [90.0, 90.0, 100.0, 100.0]
    assert x[:, mask("Heart Rate")].tolist() == [1, 0, 1, 0]
    # Never measured: the normal value in every hour, mask 0.
    assert x[:, col("Glucose")].tolist() == [128.0] * 4
    assert x[:, mask("Glucose")].sum() == 0


def test_measurements_outside_the_stay_hours_are_dropped():
    x = discretize(stay(), 4)
    # -0.5 h (before intime) is not used for hour 0's imputation; 4.2 h is past row 3.
    assert x[0, col("Heart Rate")] == 90.0 and x[3, col("Heart Rate")] == 100.0
    x2 = discretize(stay(), 5)
    assert x2[4, col("Heart Rate")] == 120.0


def test_categorical_one_hot_with_normal_category_before_first_measurement():
    x = discretize(stay(), 4)
    eye = [c for c in NAMES if c.startswith("Glascow coma scale eye opening->")]
    block = x[:, [col(c) for c in eye]]
    assert block.sum(axis=1).tolist() == [1, 1, 1, 1]  # exactly one category per hour
    assert x[0, col("Glascow coma scale eye opening->4 Spontaneously")] == 1  # normal
    assert x[1:, col("Glascow coma scale eye opening->To Pain")].tolist() == [1, 1, 1]
    assert x[:, mask("Glascow coma scale eye opening")].tolist() == [0, 1, 0, 0]


def test_numeric_categories_read_back_from_csv_map_to_their_category():
    x = discretize(stay(), 4)
    assert x[:, col("Capillary refill rate->1.0")].tolist() == [0, 0, 1, 1]
    assert x[:, col("Capillary refill rate->0.0")].tolist() == [1, 1, 0, 0]
    assert x[:, col("Glascow coma scale total->15")].tolist() == [1, 1, 0, 0]
    assert x[:, col("Glascow coma scale total->9")].tolist() == [0, 0, 1, 1]
    same = stay().astype({"Glascow coma scale total": object, "Capillary refill rate": object})
    same["Glascow coma scale total"] = [None, None, "15", None, None, "9", None]
    same["Capillary refill rate"] = [None] * 5 + ["1.0", None]
    np.testing.assert_array_equal(discretize(same, 4), x)


def test_unknown_category_is_refused_or_ignored():
    ts = pd.DataFrame({"hours": [0.5], "Glascow coma scale eye opening": ["Wide awake"]})
    with pytest.raises(ValueError, match="1 value"):
        discretize(ts, 2)
    assert ERR_UNKNOWN_CATEGORY.startswith("{variable}")
    x = discretize(ts, 2, unknown="ignore")
    assert x[:, mask("Glascow coma scale eye opening")].sum() == 0
    assert x[0, col("Glascow coma scale eye opening->4 Spontaneously")] == 1


def test_encode_categories_accepts_strings_and_numbers():
    eye = VARIABLES[3]
    assert encode_categories(pd.Series(["To Pain", None]), eye).tolist() == [0, -1]
    total = VARIABLES[5]
    assert encode_categories(np.array([15.0, np.nan, 3.0]), total).tolist() == [4, -1, 6]


def test_split_path_stacks_stays_in_index_order_and_matches_single_stays():
    a = stay().assign(stay_id=11)
    b = pd.DataFrame({"stay_id": 7, "hours": [0.1, 3.9], "Temperature": [38.5, 36.0]})
    ts = pd.concat([a, b]).sample(frac=1, random_state=0)  # row order does not matter
    index = split_index([7, 11], [5, 4])
    assert index["offset"].tolist() == [0, 5]
    x = discretize_split(ts, index)
    assert x.shape == (9, 76)
    np.testing.assert_array_equal(x[:5], discretize(b.drop(columns="stay_id"), 5))
    np.testing.assert_array_equal(x[5:], discretize(a, 4))
    assert x[:5, col("Temperature")].tolist() == [38.5, 38.5, 38.5, 36.0, 36.0]


def test_stays_missing_from_the_index_are_an_error():
    ts = pd.DataFrame({"stay_id": [1, 2], "hours": [0.5, 0.5], "Heart Rate": [80.0, 81.0]})
    with pytest.raises(ValueError, match="missing from the index"):
        discretize_split(ts, split_index([1], [2]))
    assert "{n}" in ERR_UNKNOWN_STAYS


def test_one_stay_only_for_discretize():
    ts = pd.DataFrame({"stay_id": [1, 2], "hours": [0.5, 0.5]})
    with pytest.raises(ValueError, match="one stay"):
        discretize(ts, 2)
