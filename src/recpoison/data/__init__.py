"""Data layer: the `Interactions` container, loaders, transforms and synthetic data."""

from recpoison.data.interactions import FakeProfiles, Interactions
from recpoison.data.loaders import BUNDLED, FORMATS, infer_format, load_dataset, parse_columns
from recpoison.data.synthetic import planted
from recpoison.data.transforms import (
    PAPER_UNPOPULAR_THRESHOLDS,
    binarize,
    default_unpopular_threshold,
    holdout_split,
    item_popularity,
    item_rating_stats,
    k_core,
    leave_one_out,
    subsample_ratings,
    subsample_users,
    unpopular_items,
)

__all__ = [
    "BUNDLED",
    "FORMATS",
    "PAPER_UNPOPULAR_THRESHOLDS",
    "FakeProfiles",
    "Interactions",
    "binarize",
    "default_unpopular_threshold",
    "holdout_split",
    "infer_format",
    "item_popularity",
    "item_rating_stats",
    "k_core",
    "leave_one_out",
    "load_dataset",
    "parse_columns",
    "planted",
    "subsample_ratings",
    "subsample_users",
    "unpopular_items",
]
