"""Uploads are checked in a spawned process of their own; one that dies is replaced on the next upload."""

from __future__ import annotations

import os
import shutil
import signal
from collections.abc import Iterator
from pathlib import Path

import pytest

from backend.core.config import Settings
from backend.core.errors import DependencyUnavailable
from backend.core.storage import LocalStorage
from backend.ml.eclo.model import EcloModel
from backend.services.upload_check import UploadChecker, check_upload
from backend.stores.dataset_files import DatasetFiles

pytestmark = pytest.mark.stack  # the checking process is a real child process


@pytest.fixture
def checker(app_settings: Settings) -> Iterator[UploadChecker]:
    made = UploadChecker(app_settings)
    yield made
    made.close()


def _stored(settings: Settings, dataset_id: str, source: Path) -> DatasetFiles:
    files = DatasetFiles(LocalStorage(settings.data_dir))
    target = Path(settings.data_dir) / files.source(dataset_id)
    target.parent.mkdir(parents=True)
    shutil.copyfile(source, target)
    return files


def test_the_checking_process_finds_what_a_check_in_this_process_finds(
    checker: UploadChecker, app_settings: Settings, small_csv: Path, small_model: EcloModel
) -> None:
    files = _stored(app_settings, "a" * 32, small_csv)
    _stored(app_settings, "b" * 32, small_csv)
    elsewhere = checker.check("a" * 32, None, "eclo")
    here = check_upload(files, small_model, "b" * 32, None, app_settings)
    assert elsewhere == here and elsewhere.rows == 6000 and elsewhere.valid > 5000 and elsewhere.refusal is None
    for name in ("rows", "report", "offsets"):
        produced = [Path(app_settings.data_dir) / getattr(files, name)(i) for i in ("a" * 32, "b" * 32)]
        assert produced[0].read_bytes() == produced[1].read_bytes()
    assert checker._executor().submit(os.getpid).result() != os.getpid()


def test_a_killed_checking_process_answers_503_and_the_next_upload_gets_another(
    checker: UploadChecker, app_settings: Settings, small_csv: Path
) -> None:
    for dataset_id in ("c" * 32, "d" * 32):
        _stored(app_settings, dataset_id, small_csv)
    first = checker._executor().submit(os.getpid).result()
    os.kill(first, signal.SIGKILL)
    with pytest.raises(DependencyUnavailable) as refused:
        checker.check("c" * 32, None, "eclo")
    assert "send the file again" in refused.value.message
    assert checker.check("d" * 32, None, "eclo").rows == 6000
    assert checker._executor().submit(os.getpid).result() != first


def test_a_file_that_cannot_be_used_is_refused_with_why(checker: UploadChecker, app_settings: Settings) -> None:
    files = DatasetFiles(LocalStorage(app_settings.data_dir))
    source = Path(app_settings.data_dir) / files.source("e" * 32)
    source.parent.mkdir(parents=True)
    source.write_text("weather,nothing else\n맑음,x\n")
    refused = checker.check("e" * 32, None, "eclo", "eclo")
    assert refused.refusal is not None and refused.refusal.startswith("the file cannot be used") and refused.rows == 0
    table = checker.check("e" * 32, None, "eclo", "auto")  # not the model's layout: kept as a table
    assert table.refusal is None and table.columns == ["weather", "nothing else"]
    assert (table.kind, table.rows) == ("table", 1)
    assert (Path(app_settings.data_dir) / files.table("e" * 32)).exists()
