# syntax=docker/dockerfile:1
# One file, two images: `backend` (API, Celery worker, Flower) and `frontend` (Streamlit dashboard).
FROM python:3.11-slim AS base
ENV PYTHONDONTWRITEBYTECODE=1 PYTHONUNBUFFERED=1 PIP_NO_CACHE_DIR=1 PIP_DISABLE_PIP_VERSION_CHECK=1
RUN groupadd --system app && useradd --system --gid app --home-dir /app --shell /usr/sbin/nologin app \
    && mkdir -p /app/keys && chown app:app /app/keys && chmod 700 /app/keys
WORKDIR /app

FROM base AS backend
# LightGBM needs the OpenMP runtime.
RUN apt-get update && apt-get install -y --no-install-recommends libgomp1 && rm -rf /var/lib/apt/lists/*
# Dependency layer: rebuilt only when pyproject.toml changes.
COPY pyproject.toml ./
RUN python -c "import tomllib; print('\n'.join(tomllib.load(open('pyproject.toml','rb'))['project']['dependencies']))" \
      > /tmp/requirements.txt \
    && pip install -r /tmp/requirements.txt
# Code layer, with the default model artifacts (LightGBM text + metadata.json).
COPY alembic.ini ./
COPY backend ./backend
COPY model ./model
RUN pip install --no-deps . && mkdir -p /app/var && chown -R app:app /app/var
USER app
EXPOSE 8000 5555
CMD ["python", "-m", "backend.api.server", "--host", "0.0.0.0", "--port", "8000"]

FROM base AS frontend
COPY pyproject.toml ./
RUN python -c "import tomllib; print('\n'.join(tomllib.load(open('pyproject.toml','rb'))['project']['optional-dependencies']['frontend']))" \
      > /tmp/requirements.txt \
    && pip install -r /tmp/requirements.txt
# The dashboard has settings of its own (frontend/settings.py) and needs no backend code.
COPY frontend ./frontend
USER app
EXPOSE 8501
# Static serving: Leaflet is served by the dashboard itself (frontend/static), so maps draw without internet.
CMD ["streamlit", "run", "frontend/dashboard.py", "--server.port=8501", "--server.address=0.0.0.0", "--server.headless=true", \
     "--server.enableStaticServing=true"]
