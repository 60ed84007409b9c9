"""`make run`: prepare the embedded stack and print what it serves."""

from __future__ import annotations

import sys

from backend.core.config import get_settings
from backend.ml.registry import get_registry


def describe_models() -> list[str]:
    registry = get_registry(get_settings().model_dir)
    lines = []
    for name in registry.names():
        info = registry.get(name).info()
        metrics = info["metrics"]
        lines.append(
            f"model {name}: version {info['version']}, trained {info['trained_at']} on {info['rows']} rows "
            f"({info['data_source']}); CV RMSLE {metrics['cv_rmsle']:.4f} vs constant "
            f"{metrics['baseline_constant_rmsle']:.4f} (ratio {metrics['cv_to_baseline_ratio']:.3f})"
        )
    return lines


def main() -> int:
    lines = describe_models()
    if not lines:
        print(f"no models under {get_settings().model_dir}; run `make model`", file=sys.stderr)
        return 1
    print("\n".join(lines))
    return 0


if __name__ == "__main__":
    sys.exit(main())
