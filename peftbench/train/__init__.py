"""Training: the loop (`loop.fit`, top to bottom), batching and scoring (`batches`), the task kinds it
calls for data and evaluation (`kinds`), measurement (`measure`) and checkpoints (`checkpoint`)."""

from .batches import EpochShuffle, check_gathered, make_loader, score_labels
from .loop import FitResult, NonFiniteLoss, evaluate, fit

__all__ = ["EpochShuffle", "FitResult", "NonFiniteLoss", "check_gathered", "evaluate", "fit", "make_loader",
           "score_labels"]
