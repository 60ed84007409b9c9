"""deploy/k8s/ cannot be applied here (no cluster), so it is checked by reading it, as tests/test_compose.py reads
docker-compose.yml: objects well formed, selectors and ports that meet, probes on routes that exist, real setting
names, secrets by reference only, the KEDA ScaledObject on the queues the workers take, and the same settings and
commands as compose."""

from __future__ import annotations

import re
import shlex
import typing
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import pytest
import yaml
from pydantic import SecretStr
from pydantic_settings import BaseSettings

from backend.api.routes.health import router as health_router
from backend.core.config import Settings
from backend.dev.processes import PROJECT_ROOT
from backend.tasks.celery_app import celery_config, training_queue
from frontend.hosts import host_allowed
from frontend.settings import DashboardSettings

pytestmark = pytest.mark.unit

K8S = PROJECT_ROOT / "deploy" / "k8s"
KUSTOMIZATION = yaml.safe_load((K8S / "kustomization.yaml").read_text())
MANIFEST_FILES = sorted(path for path in K8S.glob("*.y*ml") if path.name != "kustomization.yaml")
OBJECTS = [(path, obj) for path in MANIFEST_FILES for obj in yaml.safe_load_all(path.read_text()) if obj]
COMPOSE = yaml.safe_load((PROJECT_ROOT / "docker-compose.yml").read_text())
SERVICES = COMPOSE["services"]
OPERATIONS = (PROJECT_ROOT / "docs" / "operations.md").read_text()

# Compose services that have no Deployment: PostgreSQL, Redis and the object store are external to the cluster, and
# the demo feed stays down in production (DEMO_FEED=off, as .env.example and the ConfigMap set).
NOT_DEPLOYED = {"postgres", "redis", "demo-feed"}
# The Secrets made by hand (docs/operations.md), never defined in deploy/k8s/.
SECRETS = {"traffic-secrets", "traffic-dashboard-key"}
# Settings that are URLs of PostgreSQL or Redis: they carry the password in production.
CONNECTION_URLS = {"DATABASE_URL", "REDIS_URL", "CELERY_BROKER_URL", "CELERY_RESULT_BACKEND", "CACHE_URL"}
SECRET_NAME = re.compile(r"(PASSWORD|SECRET|TOKEN|_KEY|_KEY_ID|_AUTH)$")
CREDENTIALS_IN_URL = re.compile(r"://[^/@\s]*:[^/@\s]*@")


def env_names(settings_class: type[BaseSettings]) -> set[str]:
    """The environment variables a pydantic-settings class reads (case-insensitive, as the classes are)."""
    prefix = settings_class.model_config.get("env_prefix", "")
    names = set()
    for name, field in settings_class.model_fields.items():
        alias = field.validation_alias or field.alias
        names.add(f"{prefix}{alias if isinstance(alias, str) else name}".upper())
    return names


def secret_fields(settings_class: type[BaseSettings]) -> set[str]:
    return {name.upper() for name, field in settings_class.model_fields.items()
            if field.annotation is SecretStr or SecretStr in typing.get_args(field.annotation)}  # fmt: skip


# Each image reads the settings of its own class: the backend's, or the dashboard's (which imports no backend code).
SETTINGS_OF_IMAGE = {SERVICES["api"]["image"]: Settings, SERVICES["frontend"]["image"]: DashboardSettings}


def objects(kind: str) -> dict[str, dict[str, Any]]:
    return {obj["metadata"]["name"]: obj for _, obj in OBJECTS if obj["kind"] == kind}


DEPLOYMENTS = objects("Deployment")
CONFIG_MAPS = objects("ConfigMap")


def main_container(deployment: dict[str, Any]) -> dict[str, Any]:
    (container,) = [c for c in deployment["spec"]["template"]["spec"]["containers"]
                    if c["name"] == deployment["metadata"]["name"]]  # fmt: skip
    return container


def all_containers() -> list[tuple[str, dict[str, Any]]]:
    found = []
    for name, deployment in DEPLOYMENTS.items():
        pod = deployment["spec"]["template"]["spec"]
        found += [(f"{name}/{c['name']}", c) for c in [*pod.get("initContainers", []), *pod["containers"]]]
    return found


def container_env(container: dict[str, Any]) -> dict[str, dict[str, Any]]:
    """Every variable a container gets, by name: {"value": ...} for a literal (inline or from a ConfigMap), else
    the reference it is read from."""
    env: dict[str, dict[str, Any]] = {}
    for source in container.get("envFrom", []):
        assert "secretRef" not in source, "envFrom secretRef hides the names it sets: use secretKeyRef per name"
        config_map = CONFIG_MAPS[source["configMapRef"]["name"]]
        env.update({name: {"value": value, "from": "ConfigMap"} for name, value in config_map["data"].items()})
    for entry in container.get("env", []):
        env[entry["name"]] = {"value": entry["value"]} if "value" in entry else entry["valueFrom"]
    return env


def compose_command(service: str) -> list[str]:
    command = SERVICES[service]["command"]
    return shlex.split(command[2]) if command[:2] == ["sh", "-c"] else list(command)


def test_every_object_is_named_and_unique_per_kind() -> None:
    assert OBJECTS
    for path, obj in OBJECTS:
        assert obj.get("apiVersion") and obj.get("kind") and obj.get("metadata", {}).get("name"), path.name
    keys = [(obj["kind"], obj["metadata"]["name"]) for _, obj in OBJECTS]
    assert len(keys) == len(set(keys)), sorted(k for k in keys if keys.count(k) > 1)


def test_the_kustomization_lists_every_manifest() -> None:
    assert KUSTOMIZATION["kind"] == "Kustomization"
    assert sorted(KUSTOMIZATION["resources"]) == [path.name for path in MANIFEST_FILES]


def test_no_secret_is_defined_here() -> None:
    """The Secrets hold the passwords: made with `kubectl create secret` (docs/operations.md), never committed."""
    assert not [obj["metadata"]["name"] for _, obj in OBJECTS if obj["kind"] == "Secret"]
    assert "secretGenerator" not in KUSTOMIZATION


def test_a_deployment_for_every_compose_process() -> None:
    assert set(DEPLOYMENTS) == set(SERVICES) - NOT_DEPLOYED


@pytest.mark.parametrize("name", sorted(DEPLOYMENTS))
def test_deployment_selects_its_own_pods(name: str) -> None:
    spec = DEPLOYMENTS[name]["spec"]
    selector, labels = spec["selector"]["matchLabels"], spec["template"]["metadata"]["labels"]
    assert selector and selector.items() <= labels.items()
    others = [other for other, d in DEPLOYMENTS.items()
              if other != name and selector.items() <= d["spec"]["template"]["metadata"]["labels"].items()]  # fmt: skip
    assert others == [], f"{name}'s selector also selects the pods of {others}"


@pytest.mark.parametrize("name", sorted(objects("Service")))
def test_service_selects_a_deployment_on_a_port_it_exposes(name: str) -> None:
    service = objects("Service")[name]
    selector = service["spec"]["selector"]
    (deployment,) = [d for d in DEPLOYMENTS.values()
                     if selector.items() <= d["spec"]["template"]["metadata"]["labels"].items()]  # fmt: skip
    exposed = {p.get("name") for c in deployment["spec"]["template"]["spec"]["containers"] for p in c.get("ports", [])}
    exposed |= {p["containerPort"] for c in deployment["spec"]["template"]["spec"]["containers"]
                for p in c.get("ports", [])}  # fmt: skip
    for port in service["spec"]["ports"]:
        assert port.get("targetPort", port["port"]) in exposed, (name, port)


def _probe_port(container: dict[str, Any], probe: dict[str, Any]) -> int:
    port = probe["httpGet"]["port"]
    named = {p.get("name"): p["containerPort"] for p in container["ports"]}
    return named.get(port, port)


def test_the_api_is_probed_on_its_health_routes() -> None:
    container = main_container(DEPLOYMENTS["api"])
    routes = {route.path for route in health_router.routes}
    assert container["livenessProbe"]["httpGet"]["path"] == "/health/live" in routes
    assert container["readinessProbe"]["httpGet"]["path"] == "/health/ready" in routes
    assert _probe_port(container, container["readinessProbe"]) == int(compose_command("api")[-1])


def test_the_dashboard_probe_names_a_host_it_answers_to() -> None:
    """The kubelet would name the pod's IP, which the Host allow-list refuses (frontend/hosts.py)."""
    container = main_container(DEPLOYMENTS["frontend"])
    allowed = container_env(container)["DASHBOARD_ALLOWED_HOSTS"]["value"].split(",")
    for kind in ("livenessProbe", "readinessProbe"):
        probe = container[kind]["httpGet"]
        assert probe["path"] == "/_stcore/health" and _probe_port(container, container[kind]) == 8501
        (host,) = [h["value"] for h in probe["httpHeaders"] if h["name"] == "Host"]
        assert host_allowed(f"{host}:8501", allowed), host


def test_flower_probe_sends_its_basic_auth() -> None:
    """Flower's /healthcheck asks for the password (backend/tasks/flower_auth.py)."""
    container = main_container(DEPLOYMENTS["flower"])
    for kind in ("livenessProbe", "readinessProbe"):
        script = " ".join(container[kind]["exec"]["command"])
        assert "http://127.0.0.1:5555/healthcheck" in script and "FLOWER_BASIC_AUTH" in script
    assert "--port=5555" in container["command"]
    health = " ".join(SERVICES["flower"]["healthcheck"]["test"])
    assert "FLOWER_BASIC_AUTH" in health, "compose's Flower health check fails once Flower has its basic auth"


@pytest.mark.parametrize("name", ["worker", "trainer"])
def test_workers_are_pinged_by_their_own_node_name(name: str) -> None:
    container = main_container(DEPLOYMENTS[name])
    command = container["command"]
    node = command[command.index("-n") + 1].split("@")[0] if "-n" in command else "celery"
    ping = container["livenessProbe"]["exec"]["command"][-1]
    assert "celery -A backend.tasks inspect ping" in ping and f"--destination {node}@$HOSTNAME" in ping


@pytest.mark.parametrize(("name", "check"), [("beat", "backend.tasks.reconcile"), ("feed", "backend.services.feed")])
def test_beat_and_feed_are_checked_as_compose_checks_them(name: str, check: str) -> None:
    container = main_container(DEPLOYMENTS[name])
    probe = container.get("livenessProbe") or container["readinessProbe"]
    assert probe["exec"]["command"] == ["python", "-m", check, "--check"]
    assert SERVICES[name]["healthcheck"]["test"] == ["CMD", *probe["exec"]["command"]]


def test_beat_runs_alone() -> None:
    """Two beats would send every periodic task twice, also during a rollout."""
    spec = DEPLOYMENTS["beat"]["spec"]
    assert spec["replicas"] == 1 and spec["strategy"]["type"] == "Recreate"


@pytest.mark.parametrize("name", sorted(DEPLOYMENTS))
def test_pods_run_as_non_root_within_resources(name: str) -> None:
    pod = DEPLOYMENTS[name]["spec"]["template"]["spec"]
    security = pod["securityContext"]
    # The images' USER is a name: the kubelet verifies runAsNonRoot only against a numeric uid.
    assert security["runAsNonRoot"] is True and security["runAsUser"] > 0
    for container in [*pod.get("initContainers", []), *pod["containers"]]:
        assert container["securityContext"]["allowPrivilegeEscalation"] is False
        assert container["securityContext"]["capabilities"]["drop"] == ["ALL"]
        for bound in ("requests", "limits"):
            assert {"cpu", "memory"} <= set(container["resources"][bound]), (container["name"], bound)


@pytest.mark.parametrize("name", sorted(DEPLOYMENTS))
def test_images_and_commands_are_compose_ones(name: str) -> None:
    pod = DEPLOYMENTS[name]["spec"]["template"]["spec"]
    assert {c["image"] for c in [*pod.get("initContainers", []), *pod["containers"]]} == {SERVICES[name]["image"]}
    command = main_container(DEPLOYMENTS[name])["command"]
    if name == "api":  # compose chains the start-up steps; here they are the init container's
        steps = compose_command("api")
        server = steps.index("exec")
        assert command == steps[server + 1 :]
        (init,) = pod["initContainers"]
        assert shlex.split(init["command"][2]) == steps[: steps.index("--register-sensors") + 1]
    else:
        assert command == compose_command(name)


def test_data_dir_is_one_volume_where_compose_shares_it() -> None:
    """Model versions, uploads, the spill file and beat's schedule: compose's `appdata`, a ReadWriteMany claim."""
    (claim,) = objects("PersistentVolumeClaim").values()
    assert claim["spec"]["accessModes"] == ["ReadWriteMany"]
    for name, deployment in DEPLOYMENTS.items():
        shares = any(str(v).startswith("appdata:") for v in SERVICES[name].get("volumes", []))
        volumes = {v["name"] for v in deployment["spec"]["template"]["spec"].get("volumes", [])
                   if v.get("persistentVolumeClaim", {}).get("claimName") == claim["metadata"]["name"]}  # fmt: skip
        container = main_container(deployment)
        mounts = {m["mountPath"] for m in container.get("volumeMounts", []) if m["name"] in volumes}
        assert mounts == ({container_env(container)["DATA_DIR"]["value"]} if shares else set()), name


@pytest.mark.parametrize(("where", "container"), all_containers(), ids=[w for w, _ in all_containers()])
def test_env_names_only_real_settings(where: str, container: dict[str, Any]) -> None:
    names = set(container_env(container))
    accepted = env_names(SETTINGS_OF_IMAGE[container["image"]])
    assert names <= accepted, f"{where}: not settings of its image: {sorted(names - accepted)}"


@pytest.mark.parametrize(("where", "container"), all_containers(), ids=[w for w, _ in all_containers()])
def test_secrets_come_only_from_secrets(where: str, container: dict[str, Any]) -> None:
    settings_class = SETTINGS_OF_IMAGE[container["image"]]
    secret_looking = (
        secret_fields(settings_class)
        | CONNECTION_URLS
        | {name for name in env_names(settings_class) if SECRET_NAME.search(name)}
    )
    for name, source in container_env(container).items():
        if name in secret_looking:
            assert "secretKeyRef" in source, f"{where}: {name} must come from a Secret, not {source}"
            assert source["secretKeyRef"]["name"] in SECRETS, (where, name)
        elif "value" in source:
            assert not CREDENTIALS_IN_URL.search(str(source["value"])), f"{where}: {name} holds credentials"
        else:
            assert "secretKeyRef" not in source or source["secretKeyRef"]["name"] in SECRETS, (where, name)


@pytest.mark.parametrize("name", sorted(CONFIG_MAPS))
def test_config_maps_hold_no_secret(name: str) -> None:
    """Checked apart from the containers: a container's own `env` entry would hide a ConfigMap key of its name."""
    secret_looking = CONNECTION_URLS | {n for cls in (Settings, DashboardSettings) for n in secret_fields(cls)}
    for key, value in CONFIG_MAPS[name]["data"].items():
        assert key not in secret_looking and not SECRET_NAME.search(key), f"{name}: {key} belongs in a Secret"
        assert not CREDENTIALS_IN_URL.search(str(value)), f"{name}: {key} holds credentials"


def test_mounted_secrets_are_the_ones_made_by_hand() -> None:
    for deployment in DEPLOYMENTS.values():
        for volume in deployment["spec"]["template"]["spec"].get("volumes", []):
            assert "secret" not in volume or volume["secret"]["secretName"] in SECRETS


def test_the_secrets_are_made_as_the_docs_say() -> None:
    """Every key a manifest needs (not optional) is in the documented `kubectl create secret` commands."""
    needed: dict[str, set[str]] = {secret: set() for secret in SECRETS}
    for _, container in all_containers():
        for source in container_env(container).values():
            ref = source.get("secretKeyRef")
            if ref and not ref.get("optional"):
                needed[ref["name"]].add(ref["key"])
    for deployment in DEPLOYMENTS.values():
        container = main_container(deployment)
        for volume in deployment["spec"]["template"]["spec"].get("volumes", []):
            if "secret" in volume:
                (mount,) = [m for m in container["volumeMounts"] if m["name"] == volume["name"]]
                key_file = Path(container_env(container)["API_KEY_FILE"]["value"])
                assert str(key_file.parent) == mount["mountPath"]
                needed[volume["secret"]["secretName"]].add(key_file.name)
    for auth in objects("TriggerAuthentication").values():
        for ref in auth["spec"]["secretTargetRef"]:
            needed[ref["name"]].add(ref["key"])
    for secret, keys in needed.items():
        command = re.search(rf"kubectl -n traffic create secret generic {secret}\b(.*?)(?:\n\n|```)", OPERATIONS, re.S)
        assert command, f"docs/operations.md does not make {secret}"
        documented = set(re.findall(r"--from-(?:literal|file)=([\w.-]+)=", command.group(1)))
        assert keys <= documented, f"{secret}: {sorted(keys - documented)} missing from docs/operations.md"


def _queues_the_worker_takes() -> tuple[set[str], Settings]:
    settings = Settings(_env_file=None, celery_queue=CONFIG_MAPS["traffic-config"]["data"]["CELERY_QUEUE"])
    command = main_container(DEPLOYMENTS["worker"])["command"]
    excluded = set(command[command.index("-X") + 1].split(",")) if "-X" in command else set()
    return {queue.name for queue in celery_config(settings)["task_queues"]} - excluded, settings


def test_the_workers_take_the_queues_compose_gives_them() -> None:
    taken, settings = _queues_the_worker_takes()
    trainer = main_container(DEPLOYMENTS["trainer"])["command"]
    assert taken and training_queue(settings) not in taken
    assert trainer[trainer.index("-Q") + 1] == training_queue(settings)


def test_the_workers_scale_on_their_queues() -> None:
    """KEDA's redis trigger reads a list's length: kombu keeps each queue as a list of its name, in REDIS_URL's
    database."""
    (scaled,) = objects("ScaledObject").values()
    assert scaled["apiVersion"] == "keda.sh/v1alpha1"
    target = scaled["spec"]["scaleTargetRef"]
    assert target.get("kind", "Deployment") == "Deployment" and target["name"] in DEPLOYMENTS
    assert target["name"] == "worker" and "replicas" not in DEPLOYMENTS["worker"]["spec"]  # KEDA owns the count
    assert 1 <= scaled["spec"]["minReplicaCount"] <= scaled["spec"]["maxReplicaCount"]
    taken, _ = _queues_the_worker_takes()
    triggers = scaled["spec"]["triggers"]
    assert {t["metadata"]["listName"] for t in triggers} == taken
    database = urlsplit(SERVICES["worker"]["environment"]["REDIS_URL"]).path.strip("/") or "0"
    auths = objects("TriggerAuthentication")
    for trigger in triggers:
        assert trigger["type"] == "redis" and trigger["metadata"]["databaseIndex"] == database
        assert not {"address", "host", "password", "port"} & set(trigger["metadata"]), "connection inline"
        auth = auths[trigger["authenticationRef"]["name"]]
        assert {ref["parameter"] for ref in auth["spec"]["secretTargetRef"]} >= {"address", "password"}
        assert {ref["name"] for ref in auth["spec"]["secretTargetRef"]} <= SECRETS


@pytest.mark.parametrize("name", sorted(DEPLOYMENTS))
def test_settings_agree_with_compose(name: str) -> None:
    """The rule: every variable compose sets for a service (its `environment`: where the database, Redis, the
    models, the data and the API are) is set for the same Deployment; the Deployment sets no other but settings
    the compose service reads from its env file (`.env`, whose template is `.env.example`: ENVIRONMENT, the
    passwords, the object store...), since a cluster has no .env. A service without an env file (the dashboard)
    gets exactly the same names. Values given literally on both sides are equal."""
    compose_env = {str(k): str(v) for k, v in (SERVICES[name].get("environment") or {}).items()}
    k8s_env = container_env(main_container(DEPLOYMENTS[name]))
    from_env_file: set[str] = set()
    if SERVICES[name].get("env_file"):
        example = (PROJECT_ROOT / ".env.example").read_text().splitlines()
        from_env_file = {line.split("=", 1)[0] for line in example if line and not line.startswith("#")}
    missing = set(compose_env) - set(k8s_env)
    unexplained = set(k8s_env) - set(compose_env) - from_env_file
    assert not missing and not unexplained, (
        f"{name}: set in compose only: {sorted(missing)}; set in k8s but neither in compose's environment nor in "
        f".env.example: {sorted(unexplained)}"
    )
    differing = {key: (value, k8s_env[key]["value"]) for key, value in compose_env.items()
                 if "${" not in value and "value" in k8s_env[key] and k8s_env[key]["value"] != value}  # fmt: skip
    assert not differing, f"{name}: compose value vs k8s value: {differing}"


def test_the_operations_guide_says_how_to_apply_it() -> None:
    assert "kubectl apply -k deploy/k8s" in OPERATIONS and "KEDA" in OPERATIONS
