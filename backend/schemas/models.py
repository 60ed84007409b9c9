"""What GET /api/models tells of a loaded model. Kinds differ in metrics and inputs: those are open mappings.

A kind's model runtime may list its own input fields (ECLO's come from `backend.ml.eclo.features.INPUT_FIELDS`, the
fields its runtime parses). A kind whose request body is the API's own (congestion: `sensor_id`, `recent`,
`neighbour_readings`, which the serving turns into the model's row) has them read from its request schema here, in
the same shape: name, description, kind, required and bounds, with a nested object's fields under `items`.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from pydantic import BaseModel, ConfigDict

from backend.schemas.traffic import CongestionPredictRequest

# JSON schema keyword -> its name in an input field; `low` and `high` as ECLO's integer fields name them.
_BOUNDS = {
    "minimum": "low",
    "maximum": "high",
    "minLength": "min_length",
    "maxLength": "max_length",
    "minItems": "min_items",
    "maxItems": "max_items",
    "maxProperties": "max_items",
}
_KINDS = {"string": "string", "number": "number", "integer": "integer", "boolean": "boolean", "array": "list"}


def input_fields(schema: type[BaseModel]) -> list[dict[str, Any]]:
    """A request body's fields, read from its JSON schema (the one OpenAPI shows)."""
    document = schema.model_json_schema()
    return _fields(document, document.get("$defs", {}))


def _resolve(node: Mapping[str, Any], defs: Mapping[str, Any]) -> Mapping[str, Any]:
    while "$ref" in node:
        node = defs[node["$ref"].rsplit("/", 1)[-1]]
    return node


def _fields(node: Mapping[str, Any], defs: Mapping[str, Any]) -> list[dict[str, Any]]:
    required = set(node.get("required", ()))
    return [_field(name, spec, name in required, defs) for name, spec in node.get("properties", {}).items()]


def _kind(option: Mapping[str, Any]) -> str:
    if option.get("format") == "date-time":
        return "time"
    if option.get("type") == "object":
        return "map of lists" if option.get("additionalProperties", {}).get("type") == "array" else "object"
    return _KINDS.get(option.get("type", ""), "any")


def _field(name: str, spec: Mapping[str, Any], required: bool, defs: Mapping[str, Any]) -> dict[str, Any]:
    options = [_resolve(option, defs) for option in spec.get("anyOf", [spec])]
    options = [option for option in options if option.get("type") != "null"]
    out: dict[str, Any] = {"name": name}
    description = spec.get("description") or next((o["description"] for o in options if "description" in o), None)
    if description:
        out["description"] = description
    out["kind"] = " or ".join(_kind(option) for option in options)
    out["required"] = required
    for option in options:
        out |= {_BOUNDS[key]: value for key, value in option.items() if key in _BOUNDS}
        inner = option
        if inner.get("type") == "object" and isinstance(inner.get("additionalProperties"), Mapping):
            inner = _resolve(inner["additionalProperties"], defs)
        if inner.get("type") == "array":
            inner = _resolve(inner.get("items", {}), defs)
        if "properties" in inner:
            out["items"] = _fields(inner, defs)
    return out


# Kinds whose request body is the API's own, not the model's row: their input fields come from its schema.
REQUEST_SCHEMAS: dict[str, type[BaseModel]] = {"congestion": CongestionPredictRequest}
REQUEST_INPUT_FIELDS: dict[str, list[dict[str, Any]]] = {
    kind: input_fields(schema) for kind, schema in REQUEST_SCHEMAS.items()
}


class ModelInfo(BaseModel):
    model_config = ConfigDict(extra="allow", protected_namespaces=())

    name: str
    kind: str | None
    version: str
    trained_at: str | None
    rows: int | None
    data_source: str | None
    lightgbm_version: str | None
    num_trees: int | None
    metrics: dict[str, Any]
    features: list[str]
    input_fields: list[dict[str, Any]] = []
    allowed_values: dict[str, list[str]] = {}
    risk_levels: list[dict[str, Any]] = []
    risk_levels_of: str | None = None
    evaluation: dict[str, Any] | None = None
    severe: dict[str, Any] | None = None

    @classmethod
    def of(cls, info: Mapping[str, Any]) -> ModelInfo:
        """A model's `info()`, with the input fields of its kind's request schema when it lists none itself."""
        fields = info.get("input_fields") or REQUEST_INPUT_FIELDS.get(str(info.get("kind")), [])
        return cls(**{**info, "input_fields": fields})


class ModelList(BaseModel):
    models: list[ModelInfo]
