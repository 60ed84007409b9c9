"""What every model kind offers the registry and the one batch pipeline (MLServer's runtime idea).

A kind is a class with a `load(folder, num_threads)` constructor; the registry knows kinds only by this
protocol, so adding a kind adds a model, not a second pipeline.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any, Protocol, TypeVar, runtime_checkable

from backend.ml.errors import InvalidRow


@runtime_checkable
class Prediction(Protocol):
    """One answer of a model: `to_dict()` is what a batch row and a record hold (with `model_version`)."""

    def to_dict(self) -> dict[str, Any]: ...


# A batch row's outcome: its prediction, or why the row was refused. One bad row never sinks the others.
RowOutcome = Prediction | InvalidRow


@runtime_checkable
class PredictiveModel(Protocol):
    name: str
    kind: str
    version: str
    metadata: Mapping[str, Any]

    def validate(self, row: Any) -> None:
        """Raise InvalidRow naming every bad field of `row`."""
        ...

    def predict_one(self, row: Any) -> Prediction: ...

    def predict_many(self, rows: Sequence[Any]) -> list[RowOutcome]:
        """One outcome per row, in order; equal to `predict_one` row by row."""
        ...

    def info(self) -> dict[str, Any]:
        """What a client needs to know: identity, metrics, accepted inputs."""
        ...


class ModelLoader(Protocol):
    def __call__(self, folder: Path, *, num_threads: int = 1) -> PredictiveModel: ...


# The keys of `info()` that say which model this is and where it came from, whatever its kind.
IDENTITY_KEYS = ("name", "kind", "version", "trained_at", "rows", "data_source", "lightgbm_version", "num_trees")

P = TypeVar("P")


def predict_row_by_row(predict_one: Callable[[Any], P], rows: Sequence[Any]) -> list[P | InvalidRow]:
    """`predict_many` for kinds that score one row at a time: each row's prediction, or its InvalidRow with the
    row's index set."""
    outcomes: list[P | InvalidRow] = []
    for index, row in enumerate(rows):
        try:
            outcomes.append(predict_one(row))
        except InvalidRow as exc:
            exc.index = index
            outcomes.append(exc)
    return outcomes
