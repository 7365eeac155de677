"""Read a pipeline YAML file, validate it (errors name the key and line), fill in the graph."""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import yaml

from orchestrator.graph import FIRST_STEP, SPECIAL_TARGETS, RetryPolicy, Step, reference_steps
from tools.context import SourceSpec
from tools.contract import Contract, contract_from_dict, pipeline_schema
from tools.verdict import FAILURE_CLASSES, ConfigError

__all__ = ["Pipeline", "Source", "load_pipeline", "parse_pipeline", "pipeline_schema"]


#: A pipeline's source: the same shape a step sees, with ``{date}`` still unfilled.
Source = SourceSpec


@dataclass(frozen=True)
class Pipeline:
    """A validated pipeline: where data comes from, what it must look like, where it goes."""

    name: str
    source: Source
    contract: Contract
    target: str
    steps: dict[str, Step]
    first_step: str = FIRST_STEP
    description: str = ""
    base_dir: Path = Path(".")
    alerts: tuple[dict[str, Any], ...] = ()
    escalation: dict[str, Any] = field(default_factory=dict)
    path: Path | None = None

    def with_overrides(self, *, source: str | None = None, target: str | None = None) -> Pipeline:
        """A copy with the source and/or target replaced (backfills, tests)."""
        out = self
        if source:
            out = replace(out, source=replace(out.source, uri=source, fallback=None))
        if target:
            out = replace(out, target=target)
        return out


def load_pipeline(path: str | Path) -> Pipeline:
    """Read and validate a pipeline file. Raises ConfigError naming the key and line."""
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise ConfigError(f"pipeline file not found: {path}") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError(f"cannot read pipeline file {path}: {exc}") from None
    return parse_pipeline(text, base_dir=path.resolve().parent, filename=str(path))


def parse_pipeline(text: str, *, base_dir: Path = Path("."), filename: str = "<pipeline>") -> Pipeline:
    try:
        node = yaml.compose(text, Loader=yaml.SafeLoader)
        data = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f" line {mark.line + 1}" if mark else ""
        raise ConfigError(f"{filename}:{where.strip() or 'line ?'}: not valid YAML: {getattr(exc, 'problem', exc)}") from None
    if not isinstance(data, dict):
        raise ConfigError(f"{filename}: a pipeline file is a YAML mapping (name, source, contract, target)")
    _validate(data, node, filename)
    return _build(data, base_dir=base_dir, filename=filename)


def _validate(data: dict[str, Any], node: yaml.Node, filename: str) -> None:
    import jsonschema

    validator = jsonschema.Draft202012Validator(pipeline_schema())
    errors = sorted(validator.iter_errors(data), key=lambda e: (len(e.path), list(map(str, e.path))))
    if not errors:
        return
    err = errors[0]
    path = list(err.path)
    if err.validator == "additionalProperties":
        # Point at the unknown key itself rather than at its parent.
        extra = [k for k in err.instance if k not in err.schema.get("properties", {})]
        if extra:
            path.append(extra[0])
            message = f"unknown key {extra[0]!r}"
        else:
            message = err.message
    elif err.validator == "required":
        message = err.message
    else:
        message = err.message
    key = ".".join(str(p) for p in path) or "(top level)"
    raise ConfigError(f"{filename}: line {_line_of(node, path)}: {key}: {message}")


def _line_of(node: yaml.Node, path: list[Any]) -> int:
    """1-based line of the YAML node at ``path`` (the deepest one that exists)."""
    line = node.start_mark.line
    for part in path:
        if isinstance(node, yaml.MappingNode):
            for key_node, value_node in node.value:
                if key_node.value == str(part):
                    line = key_node.start_mark.line
                    node = value_node
                    break
            else:
                break
        elif isinstance(node, yaml.SequenceNode) and isinstance(part, int) and part < len(node.value):
            node = node.value[part]
            line = node.start_mark.line
        else:
            break
    return line + 1


def _build(data: dict[str, Any], *, base_dir: Path, filename: str) -> Pipeline:
    src = data["source"]
    source = Source(
        uri=src["uri"],
        fallback=src.get("fallback"),
        checksum=src.get("checksum"),
        min_bytes=src.get("min_bytes", 1),
        timeout_s=float(src.get("timeout_s", 10.0)),
    )
    contract = contract_from_dict(data["contract"], transform=data.get("transform"))
    # Steps named in the file override the reference step of the same id, key by key, or
    # add a new step; so a file can tune one retry policy without spelling the whole graph.
    raw_steps = reference_steps()
    for sid, spec in (data.get("steps") or {}).items():
        raw_steps[sid] = {**raw_steps.get(sid, {}), **spec}
        if "skill" not in raw_steps[sid]:
            raise ConfigError(f"{filename}: steps.{sid}: a new step needs a 'skill'")
    steps = {sid: _step(sid, spec, filename) for sid, spec in raw_steps.items()}
    first = next(iter(raw_steps))
    for step in steps.values():
        for target in [step.on_pass, *step.on_fail.values()]:
            if target not in steps and target not in SPECIAL_TARGETS:
                raise ConfigError(
                    f"{filename}: steps.{step.id} routes to {target!r}, which is neither a step "
                    f"nor one of {', '.join(SPECIAL_TARGETS)}"
                )
    return Pipeline(
        name=data["name"],
        description=data.get("description", ""),
        source=source,
        contract=contract,
        target=data["target"],
        steps=steps,
        first_step=first,
        base_dir=base_dir,
        alerts=tuple(data.get("alerts", ())),
        escalation=dict(data.get("escalation", {})),
    )


def _step(step_id: str, spec: dict[str, Any], filename: str) -> Step:
    on_fail = spec.get("on_fail", "escalate")
    if isinstance(on_fail, str):
        on_fail = {"*": on_fail}
    for fc in on_fail:
        if fc != "*" and fc not in FAILURE_CLASSES:
            raise ConfigError(f"{filename}: steps.{step_id}.on_fail: unknown failure class {fc!r}")
    r = spec.get("retry", {})
    retry = RetryPolicy(
        attempts=r.get("attempts", 1),
        base_delay=float(r.get("base_delay", 1.0)),
        max_delay=float(r.get("max_delay", 30.0)),
        jitter=float(r.get("jitter", 0.1)),
        budget_s=float(r.get("budget_s", 300.0)),
        on=tuple(r.get("on", ("transient",))),
    )
    return Step(
        id=step_id,
        skill=spec["skill"],
        on_pass=spec.get("on_pass", "done"),
        on_fail=dict(on_fail),
        params=dict(spec.get("params", {})),
        retry=retry,
    )
