"""What skills and the orchestrator share: the verdict, the contract, readers, sinks, sources."""

from tools.contract import Column, Contract, load_contract
from tools.verdict import (
    FAILURE_CLASSES,
    ConfigError,
    Criterion,
    HealError,
    InputError,
    SourceError,
    TargetError,
    Verdict,
    VerdictInvalid,
    validate_verdict,
)

__all__ = [
    "FAILURE_CLASSES",
    "Column",
    "ConfigError",
    "Contract",
    "Criterion",
    "HealError",
    "InputError",
    "SourceError",
    "TargetError",
    "Verdict",
    "VerdictInvalid",
    "load_contract",
    "validate_verdict",
]
