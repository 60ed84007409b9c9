"""`python -m backend.models`: the model lifecycle from a terminal (list versions, train, promote, roll back, drift),
an HTTP client of the API's /api/models routes: see backend/models/__main__.py."""
