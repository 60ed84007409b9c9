"""LightGBM's single-row fast C API (`LGBM_BoosterPredictForMatSingleRowFast`) through ctypes.

`Booster.predict` builds a predictor, checks and converts its input on every call (for one row, more Python
than prediction); the fast API prepares that once per (booster, prediction type). Uses lightgbm's private `_LIB`, so the
lightgbm version is pinned. A prepared config holds buffers: one per thread.
"""

from __future__ import annotations

import ctypes
import threading
from collections.abc import Sequence

import lightgbm as lgb
import numpy as np
from lightgbm.basic import _LIB, _safe_call

PREDICT_NORMAL = 0
PREDICT_RAW_SCORE = 1
PREDICT_CONTRIB = 3
DTYPE_FLOAT64 = 1


class _FastConfig:
    def __init__(self, booster: lgb.Booster, predict_type: int, num_features: int, out_size: int) -> None:
        self.handle = ctypes.c_void_p()
        _safe_call(
            _LIB.LGBM_BoosterPredictForMatSingleRowFastInit(
                booster._handle,
                ctypes.c_int(predict_type),
                ctypes.c_int(0),
                ctypes.c_int(-1),
                ctypes.c_int(DTYPE_FLOAT64),
                ctypes.c_int32(num_features),
                ctypes.c_char_p(b"num_threads=1"),
                ctypes.byref(self.handle),
            )
        )
        self.row = np.zeros(num_features, dtype=np.float64)
        self.row_ptr = self.row.ctypes.data_as(ctypes.c_void_p)
        self.out = np.empty(out_size, dtype=np.float64)
        self.out_ptr = self.out.ctypes.data_as(ctypes.POINTER(ctypes.c_double))
        self.out_len = ctypes.c_int64()
        self.out_len_ref = ctypes.byref(self.out_len)

    def __del__(self) -> None:
        if _LIB is not None and self.handle:
            _LIB.LGBM_FastConfigFree(self.handle)


class SingleRowPredictor:
    """Raw score, or per-feature contributions (+ bias), of one float64 feature row."""

    def __init__(self, booster: lgb.Booster, num_features: int) -> None:
        self.booster = booster
        self.num_features = num_features
        self._local = threading.local()

    def _config(self, predict_type: int) -> _FastConfig:
        try:
            return self._local.configs[predict_type]
        except (AttributeError, KeyError):
            pass
        configs = self._local.__dict__.setdefault("configs", {})
        config = configs.get(predict_type)
        if config is None:
            size = self.num_features + 1 if predict_type == PREDICT_CONTRIB else 1
            config = configs[predict_type] = _FastConfig(self.booster, predict_type, self.num_features, size)
        return config

    def _run(self, row: np.ndarray, predict_type: int) -> np.ndarray:
        if row.dtype != np.float64 or not row.flags.c_contiguous or row.shape != (self.num_features,):
            raise ValueError(f"expected a contiguous float64 row of {self.num_features} features")
        config = self._config(predict_type)
        _safe_call(
            _LIB.LGBM_BoosterPredictForMatSingleRowFast(
                config.handle, row.ctypes.data_as(ctypes.c_void_p), config.out_len_ref, config.out_ptr
            )
        )
        return config.out[: config.out_len.value].copy()

    def raw(self, row: np.ndarray) -> float:
        """The model's output: for a regression, its value; for a binary model, the probability."""
        return float(self._run(row, PREDICT_NORMAL)[0])

    def margin(self, row: np.ndarray) -> float:
        """The raw score before any link function (a binary model's log-odds)."""
        return float(self._run(row, PREDICT_RAW_SCORE)[0])

    def raw_each(self, rows: Sequence[Sequence[float]]) -> list[float]:
        """Raw scores of plain-Python rows, each copied into the thread's own input buffer (no array per row)."""
        config = self._config(PREDICT_NORMAL)
        buffer, score, predict = config.row, config.out.item, _LIB.LGBM_BoosterPredictForMatSingleRowFast
        args = (config.handle, config.row_ptr, config.out_len_ref, config.out_ptr)
        scores = []
        for row in rows:
            buffer[:] = row
            _safe_call(predict(*args))
            scores.append(score(0))
        return scores

    def contributions(self, row: np.ndarray) -> np.ndarray:
        return self._run(row, PREDICT_CONTRIB)
