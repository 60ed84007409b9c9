"""The shadow's queue on the answer's path: a sample of the predictions, bounded, sent in batches."""

from __future__ import annotations

from typing import Any

from backend.predictions.shadow import BATCH, ShadowScorer, compared_figures


class Challenged:
    """A registry whose `eclo` has a challenger (the scorer asks nothing else of it)."""

    class Version:
        version = "c0ffee00c0ffee00"

    def challenger(self, name: str) -> Any:
        return self.Version() if name == "eclo" else None


ANSWER = {"eclo": 4.2, "risk_level": "high"}


def test_every_kth_prediction_is_sent_in_batches_per_challenger() -> None:
    sent: list[tuple[str, str, list[Any]]] = []
    scorer = ShadowScorer(Challenged(), lambda *batch: sent.append(batch), size=10_000, sample_rate=0.2)  # type: ignore[arg-type]
    for i in range(2000):
        scorer.offer("eclo", "champion0", {"row": i}, ANSWER)
        scorer.offer("congestion", "champion1", {"row": i}, ANSWER)  # no challenger: nothing queued
    assert scorer.drain() == 400
    assert [len(items) for _, _, items in sent] == [BATCH, 400 - BATCH]
    assert {(name, version) for name, version, _ in sent} == {("eclo", "c0ffee00c0ffee00")}
    rows = [item[1]["row"] for _, _, items in sent for item in items]
    assert rows == list(range(4, 2000, 5))
    assert sent[0][2][0][:4] == ["champion0", {"row": 4}, 4.2, "high"]


def test_a_full_queue_skips_and_a_down_broker_drops_without_raising() -> None:
    def refuse(*_: Any) -> None:
        raise ConnectionError("broker down")

    scorer = ShadowScorer(Challenged(), refuse, size=3, sample_rate=1)  # type: ignore[arg-type]
    for i in range(10):
        scorer.offer("eclo", "champion0", {"row": i}, ANSWER)
    assert len(scorer._queue) == 3
    assert scorer.drain() == 0 and not scorer._queue


def test_compared_figures_of_both_kinds() -> None:
    assert compared_figures(ANSWER) == (4.2, "high")
    forecast = {"forecasts": [{"speed_mph": 51.5, "level": "free"}, {"speed_mph": 40.0, "level": "moderate"}]}
    assert compared_figures(forecast) == (51.5, "free")
    assert compared_figures({"doubled": 2}) == (None, None)
