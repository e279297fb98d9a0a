"""Remedies after detection: retrain without the flagged users, or SISA unlearning."""

from recpoison.remedies.base import RemedyResult, removal_mask, retrain
from recpoison.remedies.sisa import SISA

__all__ = ["SISA", "RemedyResult", "removal_mask", "retrain"]
