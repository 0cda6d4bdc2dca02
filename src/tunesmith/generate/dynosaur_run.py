"""``run_dynosaur``: Dynosaur over a dataset or a folder of datasets, through the run driver.

The glue behind ``tunesmith generate dynosaur DATASET --out RUN``. Every dataset is read and its
metadata built before a run folder is made (a bad file fails first, naming file and line). The
folder resumes with the same settings; a folder of datasets may gain new datasets between runs
(Dynosaur's growth paradigm): only those are designed and applied.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from tunesmith.driver import RunDriver, fingerprint
from tunesmith.errors import ConfigError
from tunesmith.generate.dynosaur import Dynosaur
from tunesmith.generate.dynosaur_meta import (
    DatasetInfo,
    dataset_name,
    find_datasets,
    load_info,
    read_rows,
)
from tunesmith.generate.pipeline import check_params
from tunesmith.jobs import llm_concurrency
from tunesmith.llm.base import Backend
from tunesmith.llm.factory import LLMConfig
from tunesmith.runs import RunDir


def load_datasets(
    path: str | os.PathLike[str], *, card: str | os.PathLike[str] | None = None,
    license: str | None = None,
) -> list[tuple[DatasetInfo, list[dict[str, Any]], str]]:  # fmt: skip
    """Every dataset under ``path`` as (metadata, rows, content fingerprint); names are unique
    (a clash gets its folder's name in front)."""
    paths = find_datasets(path)
    if card is not None and len(paths) > 1:
        raise ConfigError("--card describes one dataset; give DATASET as a file or dataset folder")
    names = [dataset_name(p) for p in paths]
    out = []
    for p, name in zip(paths, names, strict=True):
        rows = read_rows(p)
        info = load_info(p, rows, card=Path(card) if card else None, license=license)
        if names.count(name) > 1:
            info.name = f"{p.parent.name}/{name}"
        out.append((info, rows, fingerprint(rows)))
    return out


def run_dynosaur(
    dataset: str | os.PathLike[str],
    *,
    out: str | Path,
    config: LLMConfig,
    params: Mapping[str, Any] | None = None,
    card: str | os.PathLike[str] | None = None,
    license: str | None = None,
    backend: Backend | None = None,
    force_new: bool = False,
    retry_failed: bool = False,
) -> RunDir:
    """Design tasks from each dataset's metadata and apply them to its rows, into ``out``.

    Args:
        dataset: an HF ``datasets`` folder, a CSV/JSON/JSONL/Parquet file, or a folder of them.
        out: the run folder; rerun to resume, or to add the datasets new in the folder.
        config: the LLM that designs the tasks.
        params: :class:`Dynosaur` options (``max_tasks``, ``prompts``, ``max_chars`` ...).
        card: a description/card file for a single dataset (else found beside it).
        license: the licence to carry on every row (else read from the card).
        backend: an already-built backend (tests, notebooks).
        force_new, retry_failed: the driver's resume flags.
    """
    params = dict(params or {})
    check_params("dynosaur", params)
    gen = Dynosaur(**params)
    datasets = load_datasets(dataset, card=card, license=license)
    run_config = {
        "method": "dynosaur",
        "data": str(dataset),
        "card": str(card) if card else None,
        "license": license,
        "params": {k: list(v) if isinstance(v, tuple) else v for k, v in params.items()},
        "llm": config.to_manifest(),
    }
    # No whole-input fingerprint: the folder may grow. Each dataset's fingerprint is checked
    # by the generator against the one it was done with.
    driver = RunDriver.open(out, method="dynosaur", config=run_config, inputs=None,
                            prompts=gen.prompt_hashes(), force_new=force_new,
                            retry_failed=retry_failed)  # fmt: skip
    with driver:
        llm = driver.make_llm(config, backend)
        try:
            summary = gen.run(datasets, llm, driver, concurrency=llm_concurrency(config))
        finally:
            llm.close()
        driver.finish("done", **summary)
    return driver.run
