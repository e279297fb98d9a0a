"""Measurements of a retrained victim, one concept per module; a cell picks those its protocol
needs (see :mod:`recpoison.experiment.cells`: poison, retrain, measure).

- :mod:`.target_hr` — HR_t@K of each target over the normal users (targeted attacks).
- :mod:`.explicit` — hold-out RMSE, integrity / availability shifts, t-test (explicit victims).
- :mod:`.detection` — a detector's flags, FPR and FNR.
- :mod:`.remedy` — what is done with flagged users (retrain without them), HR_t afterwards.
- :mod:`.quality` — leave-one-out HR@10 / NDCG@10 of a victim.
- :mod:`.untargeted` — accuracy / AUROC / BCE on labelled edges (edge attacks, untargeted).

Each measurement observes every :class:`~.base.Fit` of the retrain step (``observe``) and
contributes result columns (``columns(t, r, j)``) or cell info.
"""

from recpoison.experiment.measures.base import Fit, Measurement

__all__ = ["Fit", "Measurement"]
