from fastapi import APIRouter

from backend.api.routes import batches, datasets, health, history, metrics, models, predict, traffic

api_router = APIRouter()
api_router.include_router(predict.router)
api_router.include_router(batches.router)
api_router.include_router(traffic.router)
api_router.include_router(datasets.router)
api_router.include_router(models.router)
api_router.include_router(history.router)
api_router.include_router(health.router)
api_router.include_router(metrics.router)
