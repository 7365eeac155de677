"""Write the corpus: every applicable fault's variant of one clean delivery, and a manifest."""

from __future__ import annotations

import json
import random
import shutil
from collections.abc import Sequence
from pathlib import Path

from orchestrator.chaos.faults import FAULTS
from orchestrator.chaos.outcome import Out, Variant, read_clean
from tools.contract import Contract
from tools.verdict import ConfigError

__all__ = ["write_variants"]


def write_variants(
    clean_file: str | Path,
    out_dir: str | Path,
    *,
    contract: Contract,
    only: Sequence[str] | None = None,
    seed: int = 7,
) -> list[Variant]:
    """Write each fault's variant of ``clean_file`` to ``out_dir/<name>/`` with ``expected.json``,
    and ``out_dir/manifest.json`` (the variants, and the faults skipped with why)."""
    clean = read_clean(Path(clean_file), contract)
    known = [name for name, _, _ in FAULTS]
    unknown = sorted(set(only or ()) - set(known))
    if unknown:
        raise ConfigError(f"unknown fault(s) {unknown}; the faults are {', '.join(known)}")
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    variants: list[Variant] = []
    skipped: dict[str, str] = {}
    for name, fault, make in FAULTS:
        if only and name not in only:
            continue
        folder = out / name
        shutil.rmtree(folder, ignore_errors=True)
        folder.mkdir(parents=True)
        expected = make(Out(clean.copy(), folder), random.Random(seed))
        if isinstance(expected, str):
            skipped[name] = expected
            shutil.rmtree(folder)
            continue
        variant = Variant(name=name, fault=fault, **expected)
        (folder / "expected.json").write_text(json.dumps(variant.to_dict(), indent=1, ensure_ascii=False))
        variants.append(variant)
    manifest = {
        "clean": str(clean_file),
        "variants": [{"name": v.name, "fault": v.fault, "path": f"{v.name}/{v.path}", "status": v.status,
                      "alert": v.alert, "failure_class": v.failure_class, "rows_read": v.rows_read,
                      "rows_loaded": len(v.loaded), "rows_quarantined": len(v.quarantined)} for v in variants],
        "skipped": skipped,
    }
    (out / "manifest.json").write_text(json.dumps(manifest, indent=1, ensure_ascii=False))
    return variants
