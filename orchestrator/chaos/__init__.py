"""Fault injection: faulty variants of a clean delivery, each with its correct outcome.

``heal chaos CLEAN_FILE OUT_DIR`` calls :func:`write_variants`; :func:`check_variant` runs a
pipeline over one variant and compares the target and the quarantine row by row.
"""

from orchestrator.chaos.corpus import write_variants
from orchestrator.chaos.faults import FAULTS
from orchestrator.chaos.outcome import Variant, canonical, load_variant
from orchestrator.chaos.verify import RUN_DATE, check_variant

__all__ = ["FAULTS", "RUN_DATE", "Variant", "canonical", "check_variant", "load_variant", "write_variants"]
