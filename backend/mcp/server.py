"""The MCP server: its tools, resources and prompts over one set of services, served over streamable HTTP (mounted on
the API), stdio (`python -m backend.mcp`) or in-process (the assistant's loop, the tests)."""

from __future__ import annotations

import json
from typing import Any

from mcp.server import MCPServer
from mcp.server.auth.settings import AuthSettings
from mcp.server.transport_security import TransportSecuritySettings
from starlette.applications import Starlette

from backend.core.config import Settings
from backend.ml.eclo.vocabulary import ENGLISH
from backend.schemas.models import ModelInfo
from backend.schemas.traffic import SensorOut
from backend.services import traffic
from backend.services.bundle import Services

from . import data_tools, tools
from .access import KeyVerifier
from .toolkit import Toolkit

INSTRUCTIONS = """Traffic prediction service for analysts: ECLO accident severity in Daegu (South Korea) and road
congestion forecasts for METR-LA style road sensors, plus uploaded datasets to explore. Inputs of the ECLO tools are
Korean values (each tool lists them with their English meaning); answer the user in their language."""


def build_server(services: Services, settings: Settings, *, http_url: str = "http://localhost/mcp") -> MCPServer:
    """The server over `services`. With AUTH_ENABLED, streamable HTTP takes the service's API keys as bearer
    tokens (`http_url`: how clients reach it, named in the auth metadata)."""
    auth = settings.auth_enabled and services.api_keys is not None
    server: MCPServer = MCPServer(
        "traffic-prediction",
        instructions=INSTRUCTIONS,
        version="0.1.0",
        token_verifier=KeyVerifier(services.api_keys) if auth else None,  # type: ignore[arg-type]
        auth=AuthSettings(issuer_url=http_url, resource_server_url=None) if auth else None,  # type: ignore[arg-type]
    )
    kit = Toolkit(server, services, settings)
    registry = services.resources.registry
    allowed: dict[str, list[str]] = registry.get("eclo").allowed_values() if "eclo" in registry.names() else {}  # type: ignore[attr-defined]
    tools.register(kit, allowed)
    data_tools.register(kit)
    _resources(kit, allowed)
    _prompts(server)
    return server


def _resources(kit: Toolkit, allowed: dict[str, list[str]]) -> None:
    server = kit.server
    registry = kit.services.resources.registry

    @server.resource("models://cards", name="model cards", mime_type="application/json")
    def model_cards() -> str:
        """Every served model's card: version, metrics against their baselines, evaluation and inputs."""
        kit.admit(None)
        cards = [ModelInfo.of(registry.get(n).info()).model_dump(mode="json") for n in registry.names()]
        return json.dumps({"models": cards})

    @server.resource("traffic://sensors", name="road sensors", mime_type="application/json")
    def sensors() -> str:
        """The registered road sensors: id, position, free-flow speed and newest reading."""
        kit.admit("read")
        with kit.services.resources.sessions() as session:
            listed = traffic.list_sensors(session)
        return json.dumps([SensorOut.model_validate(s).model_dump(mode="json") for s in listed])

    @server.resource("eclo://vocabulary", name="ECLO input values", mime_type="application/json")
    def vocabulary() -> str:
        """The values each categorical ECLO input takes, each with its English meaning."""
        kit.admit(None)
        return json.dumps(
            {field: [{"value": v, "english": ENGLISH.get(v)} for v in values] for field, values in allowed.items()},
            ensure_ascii=False,
        )


def _prompts(server: MCPServer) -> None:
    @server.prompt()
    def assess_trip_risk(district: str, when: str, weather: str = "맑음") -> str:
        """Assess a trip's accident risk in a Daegu district at a given time and weather."""
        return (
            f"Assess the accident risk of a trip in {district} (Daegu) at {when} in weather {weather}. Use "
            "predict_eclo for the likely accident types on that road, risk_ranking to compare the district with "
            "the others under the same conditions, and explain the chance of a death or serious injury and what "
            "drives it in plain words."
        )

    @server.prompt()
    def summarise_congestion(sensor_id: str | None = None) -> str:
        """Summarise the road network's congestion now, optionally around one sensor."""
        around = f" and around sensor {sensor_id} (sensor_history, predict_congestion)" if sensor_id else ""
        return (
            f"Summarise the congestion of the road network now (network_status, forecast_network){around}: "
            "how many sensors are at each level, where it is slowest, and what the next hour looks like."
        )


def http_app(server: MCPServer, settings: Settings) -> Starlette:
    """Streamable HTTP, stateless and answering JSON, so any API process serves any request."""
    security = TransportSecuritySettings(
        enable_dns_rebinding_protection=bool(settings.mcp_allowed_hosts),
        allowed_hosts=settings.mcp_allowed_hosts,
        allowed_origins=[f"http://{h}" for h in settings.mcp_allowed_hosts],
    )
    return server.streamable_http_app(
        streamable_http_path="/mcp",
        stateless_http=True,
        json_response=True,
        transport_security=security,
        max_request_body_size=settings.request_max_bytes,
    )


def tool_names(server: MCPServer) -> list[str]:
    return [t.name for t in server._tool_manager.list_tools()]


__all__: list[Any] = ["build_server", "http_app", "tool_names"]
