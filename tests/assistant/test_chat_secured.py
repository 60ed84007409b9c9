"""The assistant on a real uvicorn with AUTH_ENABLED=true, asking the loopback stand-in LLM: the caller's scopes
reach the tools, a conversation belongs to its key, a conversation about an uploaded side table runs its data
tools, and the user's LLM key is in no log."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pandas as pd
import pytest

from backend.schemas.eclo import CLASSIC_EXAMPLE
from tests.fixtures.auth import Secured
from tests.fixtures.datasets import upload
from tests.fixtures.explore import side_table
from tests.fixtures.fake_llm import FakeLLM, tool_call, turn

pytestmark = pytest.mark.stack

USER_KEY = "sk-ant-secured-" + "s3cr3t" * 6


def _ask(secured: Secured, key: str, conversation: str, content: str) -> Any:
    with secured.client(key) as client:
        return client.post(f"/api/assistant/conversations/{conversation}/messages", json={"content": content},
                           headers={"X-Anthropic-API-Key": USER_KEY})  # fmt: skip


def _conversation(secured: Secured, key: str, **body: Any) -> str:
    with secured.client(key) as client:
        made = client.post("/api/assistant/conversations", json=body)
    assert made.status_code == 201, made.text
    return made.json()["id"]


def test_the_assistant_needs_the_predict_scope_and_its_tools_get_the_callers(
    secured: Secured, fake_llm: FakeLLM
) -> None:
    with secured.client(secured.keys["reader"]) as reader:
        assert reader.post("/api/assistant/conversations", json={}).status_code == 403
    with secured.client() as nobody:
        assert nobody.get("/api/assistant/conversations").status_code == 401
    fake_llm.script(
        turn(
            "",
            tool_call("predict_eclo", {"accident": {**CLASSIC_EXAMPLE, "weather": "sunny"}}),
            tool_call("recent_predictions", {}),
        ),
        turn("Done."),
    )
    predictor = secured.keys["predictor"]
    answered = _ask(secured, predictor, _conversation(secured, predictor), "risk in the rain, and recent records?")
    assert answered.status_code == 200, answered.text
    eclo_step, records_step = answered.json()["message"]["steps"]
    assert eclo_step["is_error"] and "422" in eclo_step["output"]  # ran, with the predict scope: a field error
    assert records_step["is_error"] and "lacks the 'read' scope" in records_step["output"]
    results = fake_llm.requests[1].messages[-1]["content"]
    assert [r["is_error"] for r in results] == [True, True]


def test_a_conversation_about_a_dataset_needs_the_read_scope(secured: Secured) -> None:
    with secured.client(secured.keys["predictor"]) as predictor:
        refused = predictor.post("/api/assistant/conversations", json={"dataset_id": "0" * 32})
    assert refused.status_code == 403 and "'read' scope" in refused.json()["error"]["message"]


def test_a_conversation_belongs_to_the_key_that_made_it(secured: Secured, fake_llm: FakeLLM) -> None:
    mine = _conversation(secured, secured.keys["predictor"])
    with secured.client(secured.keys["other"]) as other:
        assert other.get(f"/api/assistant/conversations/{mine}").status_code == 404
        assert other.delete(f"/api/assistant/conversations/{mine}").status_code == 404
        assert mine not in {c["id"] for c in other.get("/api/assistant/conversations").json()["items"]}
    assert _ask(secured, secured.keys["other"], mine, "hello").status_code == 404
    assert fake_llm.requests == []


def test_a_conversation_about_a_side_table_counts_cameras_per_gu(secured: Secured, fake_llm: FakeLLM) -> None:
    frame = side_table("cctv", 240, seed=11)
    key = secured.keys["all"]
    with secured.client(key) as client:
        made = upload(client, frame.to_csv(index=False).encode("cp949"), filename="cameras.csv", name="cameras")
        assert made.status_code == 201, made.text
        dataset = made.json()["id"]
        conversation = _conversation(secured, key, dataset_id=dataset)
        fake_llm.script(
            turn("", tool_call("group_aggregate", {"dataset_id": dataset, "group_by": ["시군구명"],
                                                   "order_by": [{"column": "count", "desc": True}]})),
            turn("달서구 has the most cameras."),
        )  # fmt: skip
        answered = _ask(secured, key, conversation, "How many cameras per 구?")
        assert answered.status_code == 200, answered.text
        (step,) = answered.json()["message"]["steps"]
        assert not step["is_error"], step["output"]
        counted = {row["시군구명"]: row["count"] for row in step["output"]["rows"]}
        expected = frame["시군구명"].value_counts()
        assert counted == {gu: int(n) for gu, n in expected.items()}
        assert isinstance(expected, pd.Series)
        first = fake_llm.requests[0]
        assert dataset in first.body["system"] and "시군구명" in first.body["system"]  # the profile, given first


def test_the_users_llm_key_is_in_no_log_of_the_api(secured: Secured, fake_llm: FakeLLM) -> None:
    fake_llm.script(turn("hi"))
    key = secured.keys["predictor"]
    assert _ask(secured, key, _conversation(secured, key), "hello").status_code == 200
    logs = Path(secured.env["DATA_DIR"]).parent / "logs"
    texts = [p.read_text(errors="replace") for p in logs.glob("*.log")]
    assert texts and all(USER_KEY not in t for t in texts)
