"""Domain errors of the ML runtime; the API turns them into its error envelope."""

from dataclasses import asdict, dataclass, field


@dataclass(frozen=True)
class FieldError:
    field: str
    message: str
    allowed: list[str] | None = None

    def to_dict(self) -> dict:
        return {k: v for k, v in asdict(self).items() if v is not None}


@dataclass
class InvalidRow(ValueError):
    """One input row failed validation; every bad field is listed."""

    errors: list[FieldError]
    index: int | None = None

    def summary(self) -> str:
        fields = "field" if len(self.errors) == 1 else "fields"
        return f"invalid input in {len(self.errors)} {fields}: {', '.join(e.field for e in self.errors)}"

    def __str__(self) -> str:
        where = f"row {self.index}: " if self.index is not None else ""
        return where + "; ".join(f"{e.field}: {e.message}" for e in self.errors)


class ModelNotFound(LookupError):
    def __init__(self, name: str, available: list[str]) -> None:
        super().__init__(f"no model named {name!r}; available: {', '.join(available) or 'none'}")
        self.name = name
        self.available = available


@dataclass
class DataFileError(ValueError):
    """A training file that cannot be used as a whole (wrong layout, unreadable)."""

    message: str
    missing_columns: list[str] = field(default_factory=list)

    def __str__(self) -> str:
        return self.message


class VersionNotFound(LookupError):
    def __init__(self, name: str, version: str) -> None:
        super().__init__(f"model {name!r} has no version {version!r}; GET /api/models/{name}/versions lists them")
        self.name = name
        self.version = version
