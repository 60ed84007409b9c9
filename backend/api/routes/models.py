from typing import Annotated

from fastapi import APIRouter, Path, Query, Response
from pydantic import AwareDatetime
from starlette.concurrency import run_in_threadpool

from backend.api.auth import ANY_KEY, AUTH_ERRORS, READ, AdminKey
from backend.api.deps import ModelLifecycleDep, RegistryDep
from backend.schemas.errors import ErrorResponse
from backend.schemas.lifecycle import (
    AliasHistory,
    AliasMoved,
    AliasName,
    AliasRequest,
    DriftReport,
    ShadowSummary,
    TrainingAccepted,
    TrainingJobList,
    TrainingJobOut,
    TrainRequest,
    VersionList,
)
from backend.schemas.models import ModelInfo, ModelList

router = APIRouter(prefix="/api/models", tags=["models"], responses=AUTH_ERRORS)
NOT_FOUND = {404: {"model": ErrorResponse}}
ModelName = Annotated[str, Path(max_length=64, pattern=r"^[A-Za-z0-9_-]+$")]
JobId = Annotated[str, Path(max_length=64, pattern=r"^[0-9a-f]+$")]
Version = Annotated[str, Path(min_length=8, max_length=64, pattern=r"^[0-9a-f]+$")]


@router.get("", dependencies=[ANY_KEY])
def list_models(registry: RegistryDep) -> ModelList:
    """Every loaded model: version, training date, metrics and the inputs it accepts."""
    return ModelList(models=[ModelInfo.of(registry.get(name).info()) for name in registry.names()])


@router.get("/{name}", responses=NOT_FOUND, dependencies=[ANY_KEY])
def get_model(name: ModelName, registry: RegistryDep) -> ModelInfo:
    """One loaded model (its champion)."""
    return ModelInfo.of(registry.get(name).info())


@router.get("/{name}/versions", responses=NOT_FOUND, dependencies=[READ])
async def list_versions(name: ModelName, lifecycle: ModelLifecycleDep) -> VersionList:
    """Every version of a model with its training data, metrics, comparison and aliases, oldest first."""
    return await run_in_threadpool(lifecycle.versions, name)


@router.delete("/{name}/versions/{version}", status_code=204, responses={**NOT_FOUND, 409: {"model": ErrorResponse}})
async def delete_version(name: ModelName, version: Version, lifecycle: ModelLifecycleDep, _: AdminKey) -> Response:
    """Delete a version that no alias points at and that is not among the last MODEL_KEEP_VERSIONS."""
    await run_in_threadpool(lifecycle.delete_version, name, version)
    return Response(status_code=204)


@router.post("/{name}/versions", status_code=202, responses={**NOT_FOUND, 422: {"model": ErrorResponse}})
async def train_version(
    name: ModelName, body: TrainRequest, lifecycle: ModelLifecycleDep, principal: AdminKey
) -> TrainingAccepted:
    """Train a new version on the workers: ECLO from uploaded datasets, congestion from stored readings."""
    return await run_in_threadpool(lifecycle.train, name, body, principal.key_id)


@router.get("/{name}/training", responses=NOT_FOUND, dependencies=[READ])
async def list_training_jobs(name: ModelName, lifecycle: ModelLifecycleDep) -> TrainingJobList:
    """The model's latest training jobs, newest first."""
    return await run_in_threadpool(lifecycle.jobs, name)


@router.get("/{name}/training/{job_id}", responses=NOT_FOUND, dependencies=[READ])
async def training_job(name: ModelName, job_id: JobId, lifecycle: ModelLifecycleDep) -> TrainingJobOut:
    """A training job: status, stage, progress, log lines and the new version when done."""
    return await run_in_threadpool(lifecycle.job, name, job_id)


@router.post("/{name}/training/{job_id}/cancel", responses={**NOT_FOUND, 409: {"model": ErrorResponse}})
async def cancel_training(name: ModelName, job_id: JobId, lifecycle: ModelLifecycleDep, _: AdminKey) -> TrainingJobOut:
    """Cancel a training job: a pending one at once, a running one at its next step (no version is left)."""
    return await run_in_threadpool(lifecycle.cancel, name, job_id)


@router.get("/{name}/aliases/history", responses=NOT_FOUND, dependencies=[READ])
async def alias_history(name: ModelName, lifecycle: ModelLifecycleDep) -> AliasHistory:
    """Every move of the model's aliases, newest first: who, when, from, to."""
    return await run_in_threadpool(lifecycle.history, name)


@router.put("/{name}/aliases/{alias}", responses={**NOT_FOUND, 409: {"model": ErrorResponse}})
async def move_alias(
    name: ModelName, alias: AliasName, body: AliasRequest, lifecycle: ModelLifecycleDep, principal: AdminKey
) -> AliasMoved:
    """Point `champion` (what every process serves, within MODEL_RELOAD_SECONDS) or `challenger` (scored in the
    shadow of single predictions) at a version. Rolling back is moving the champion to the previous version."""
    return await run_in_threadpool(lifecycle.move_alias, name, alias, body.version, principal.key_id)


@router.delete("/{name}/aliases/{alias}", responses={**NOT_FOUND, 409: {"model": ErrorResponse}})
async def remove_alias(
    name: ModelName, alias: AliasName, lifecycle: ModelLifecycleDep, principal: AdminKey
) -> AliasMoved:
    """Remove the challenger (the champion can only be moved)."""
    return await run_in_threadpool(lifecycle.remove_alias, name, alias, principal.key_id)


@router.post("/{name}/rollback", responses={**NOT_FOUND, 409: {"model": ErrorResponse}})
async def rollback(name: ModelName, lifecycle: ModelLifecycleDep, principal: AdminKey) -> AliasMoved:
    """Move the champion back to the version it pointed at before its last move."""
    return await run_in_threadpool(lifecycle.rollback, name, principal.key_id)


@router.get("/{name}/shadow", responses=NOT_FOUND, dependencies=[READ])
async def shadow(name: ModelName, lifecycle: ModelLifecycleDep) -> ShadowSummary:
    """The challenger beside the champion on the single predictions scored in its shadow."""
    return await run_in_threadpool(lifecycle.shadow, name)


@router.get("/{name}/drift", responses=NOT_FOUND, dependencies=[READ])
async def drift(
    name: ModelName,
    lifecycle: ModelLifecycleDep,
    since: Annotated[AwareDatetime | None, Query(description="default: 7 days before `until`")] = None,
    until: Annotated[AwareDatetime | None, Query(description="default: now")] = None,
) -> DriftReport:
    """The recorded inputs and predictions of the window against the champion's training reference: PSI,
    chi-squared p-value and a drifted flag per field."""
    return await run_in_threadpool(lifecycle.drift, name, since, until)
