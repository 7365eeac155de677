"""What history says a delivery should look like: volume, freshness, value distributions.

Pure functions over numbers and dates the caller read from the ledger (or a JSON file):
no I/O, no clock. Each returns a :class:`Finding` (pass, observed, expected and a short
explanation) that a checker turns into a :class:`~tools.verdict.Criterion`.

The statistics are robust on purpose: a median and the median absolute deviation (MAD),
so one odd day in the history neither moves the expectation nor widens it much.

* **Volume.** With fewer than :data:`MIN_RUNS` earlier runs the expectation is the
  median ± the contract's tolerance. With more, the band is ``k`` robust standard
  deviations of the day-to-day relative swing, never narrower than the tolerance: history
  can widen the band for a noisy feed, never tighten it below what the contract allows.
  Once :data:`MIN_SAME_WEEKDAY` earlier runs fell on the run date's weekday, the centre
  is the median of those days (weekly seasonality: quiet Sundays are normal Sundays).
* **Freshness.** The newest date in the delivery may be at most ``freshness_days`` before
  the run date.
* **Distribution.** Each of a numeric column's median, mean, p05 and p95 is compared with
  the same statistic of earlier loaded deliveries by a robust z-score. The spread has a
  floor (a tenth of the column's usual p05..p95 width, and 5% of its centre), so the
  sampling noise of small deliveries and a normal 10% swing stay quiet while a 100x jump
  (amounts in cents) scores in the hundreds.
"""

from __future__ import annotations

import math
import statistics
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import date, datetime
from typing import Any

from tools.verdict import Criterion

__all__ = [
    "MAD_TO_SIGMA",
    "MIN_RUNS",
    "MIN_SAME_WEEKDAY",
    "PROFILE_RUNS",
    "SHIFT_STATS",
    "SHIFT_Z",
    "VOLUME_K",
    "WINDOW_DAYS",
    "Finding",
    "distribution_shift",
    "expected_volume",
    "freshness",
    "robust_z",
]

#: Trailing window of run dates the volume expectation looks at (eight weeks: eight Mondays).
WINDOW_DAYS = 56
#: Loaded runs whose column profiles the distribution check compares against.
PROFILE_RUNS = 30
#: Fewer earlier runs than this: no robust spread (volume falls back to ±tolerance, distribution passes).
MIN_RUNS = 5
#: Earlier runs on the run date's weekday needed before the weekday median becomes the centre.
MIN_SAME_WEEKDAY = 3
#: Volume band half-width in robust standard deviations (the usual modified z-score cut-off).
VOLUME_K = 3.5
#: A distribution statistic further than this many robust standard deviations is a shift.
SHIFT_Z = 5.0
#: MAD times this estimates the standard deviation of normally distributed values.
MAD_TO_SIGMA = 1.4826
#: The profile statistics the distribution check compares.
SHIFT_STATS = ("median", "mean", "p05", "p95")
_WEEKDAYS = ("Monday", "Tuesday", "Wednesday", "Thursday", "Friday", "Saturday", "Sunday")


@dataclass(frozen=True)
class Finding:
    """One judgement against history. ``method`` says how the expectation was formed."""

    passed: bool
    observed: Any
    expected: Any
    detail: str
    method: str
    metrics: Mapping[str, Any] | None = None

    def to_criterion(self, criterion_id: str) -> Criterion:
        return Criterion(criterion_id, self.passed, self.observed, self.expected, self.detail)


def _mad(values: Sequence[float]) -> float:
    centre = statistics.median(values)
    return statistics.median(abs(v - centre) for v in values)


def robust_z(value: float, history: Sequence[float], *, floor: float = 0.0) -> tuple[float, float, float]:
    """(z, centre, spread): how many robust standard deviations ``value`` is from the history's median.

    The spread is ``MAD_TO_SIGMA * MAD`` but at least ``floor`` (and never zero).
    """
    centre = statistics.median(history)
    spread = max(MAD_TO_SIGMA * _mad(history), floor, 1e-9)
    return (value - centre) / spread, centre, spread


# --- volume -----------------------------------------------------------------------------------


def _as_date(value: date | datetime | str) -> date:
    if isinstance(value, datetime):
        return value.date()
    if isinstance(value, date):
        return value
    return date.fromisoformat(str(value)[:10])


def expected_volume(
    rows: int,
    history: Iterable[tuple[date | str, int]],
    *,
    run_date: date,
    tolerance: float = 0.2,
    window_days: int = WINDOW_DAYS,
    k: float = VOLUME_K,
) -> Finding:
    """Is ``rows`` what the trailing window of (run_date, rows) history leads us to expect?

    Only runs in the ``window_days`` before ``run_date`` count, one per date (the first
    given, so pass newest first). See the module docstring for the three methods.
    """
    points: dict[date, int] = {}
    for day, count in history:
        d = _as_date(day)
        if 0 < (run_date - d).days <= window_days and d not in points and count is not None:
            points[d] = int(count)
    if not points:
        return Finding(True, rows, None, f"no loaded runs in the {window_days} days before {run_date}: "
                       "nothing to compare yet", "none")
    values = list(points.values())
    n = len(values)
    if n < MIN_RUNS:
        centre, half = float(statistics.median(values)), tolerance
        method, basis = "tolerance", f"the median of {n} earlier runs ±{tolerance:.0%} (too few runs for a robust band)"
    else:
        by_weekday: dict[int, list[int]] = {}
        for d, v in points.items():
            by_weekday.setdefault(d.weekday(), []).append(v)
        overall = statistics.median(values)
        baseline = {wd: statistics.median(vs) if len(vs) >= MIN_SAME_WEEKDAY else overall
                    for wd, vs in by_weekday.items()}
        swings = [v / baseline[d.weekday()] - 1 for d, v in points.items() if baseline[d.weekday()] > 0]
        sigma = MAD_TO_SIGMA * _mad(swings) if swings else 0.0
        half = max(k * sigma, tolerance)
        same = by_weekday.get(run_date.weekday(), [])
        if len(same) >= MIN_SAME_WEEKDAY:
            centre, method = float(statistics.median(same)), "seasonal"
            basis = f"the median of the last {len(same)} {_WEEKDAYS[run_date.weekday()]}s"
        else:
            centre, method = float(overall), "robust"
            basis = f"the median of {n} earlier runs"
        basis += f" ±{half:.0%} ({k:g} robust standard deviations of the day-to-day swing, at least ±{tolerance:.0%})"
    low, high = max(0.0, centre * (1 - half)), centre * (1 + half)
    passed = low <= rows <= high
    change = f"{rows / centre - 1:+.0%}" if centre else "n/a"
    detail = f"{rows} rows ({change}) vs {basis}: expected {round(low)}..{round(high)}"
    if not passed:
        detail += "; the valid rows load: confirm with the vendor that the file is complete"
    return Finding(passed, rows, [round(low), round(high)], detail, method,
                   {"volume_method": method, "volume_expected": round(centre, 3), "volume_runs": n})


# --- freshness --------------------------------------------------------------------------------


def freshness(newest: date | datetime | str | None, *, run_date: date, max_age_days: int | None) -> Finding:
    """Is the newest date in the delivery at most ``max_age_days`` before ``run_date``?"""
    if max_age_days is None:
        return Finding(True, None, None, "the contract sets no freshness_days: not checked", "off")
    expected = {"max_age_days": max_age_days, "newest_on_or_after": _days_before(run_date, max_age_days)}
    if newest is None:
        return Finding(True, None, expected, "no parseable date in the delivery: validate-quality judges the values",
                       "no_dates")
    day = _as_date(newest)
    age = (run_date - day).days
    passed = age <= max_age_days
    observed = {"newest": day.isoformat(), "age_days": age}
    detail = f"newest date {day} is {age} day(s) before the run date {run_date} (at most {max_age_days} allowed)"
    if not passed:
        detail += ": stale data is held; ask the vendor for the current delivery"
    return Finding(passed, observed, expected, detail, "freshness_days", {"newest_date": day.isoformat(), "age_days": age})


def _days_before(day: date, days: int) -> str:
    return date.fromordinal(day.toordinal() - days).isoformat()


# --- distribution -----------------------------------------------------------------------------


def _number(value: Any) -> float | None:
    if isinstance(value, bool) or value is None:
        return None
    try:
        out = float(value)
    except (TypeError, ValueError):
        return None
    return out if math.isfinite(out) else None


def _unit_hint(ratio: float) -> str:
    """A note such as "about x100: a unit change?" when a ratio is close to a power of ten."""
    if ratio <= 0 or 0.2 < ratio < 5:
        return ""
    power = math.log10(ratio)
    if abs(power - round(power)) > 0.15:
        return f" (about x{ratio:.3g})"
    factor = 10 ** round(power)
    shown = f"x{factor:g}" if factor >= 1 else f"/{1 / factor:g}"
    return f" (about {shown}: a unit change, such as cents instead of units?)"


def distribution_shift(
    current: Mapping[str, Mapping[str, Any]],
    history: Sequence[Mapping[str, Mapping[str, Any]]],
    *,
    z_limit: float = SHIFT_Z,
    min_runs: int = MIN_RUNS,
) -> Finding:
    """Did any numeric column's median, mean, p05 or p95 move far from its history?

    ``current`` maps column → {stat: value}; ``history`` is one mapping per earlier loaded
    run, column → profile (``heal.profiles``: the same stats plus others). A column with
    fewer than ``min_runs`` earlier profiles is not judged.
    """
    observed: dict[str, dict[str, float]] = {}
    expected: dict[str, dict[str, list[float]]] = {}
    scores: dict[str, float] = {}
    worst: tuple[float, str, str, float, float] | None = None  # (|z|, column, stat, value, centre)
    for column, stats in sorted(current.items()):
        profiles = [h[column] for h in history if isinstance(h.get(column), Mapping)]
        widths = [w for p in profiles
                  if (lo := _number(p.get("p05"))) is not None and (hi := _number(p.get("p95"))) is not None
                  for w in [hi - lo]]
        scale = statistics.median(widths) if widths else 0.0
        for stat in SHIFT_STATS:
            value = _number(stats.get(stat))
            past = [x for p in profiles if (x := _number(p.get(stat))) is not None]
            if value is None or len(past) < min_runs:
                continue
            centre = statistics.median(past)
            z, centre, spread = robust_z(value, past, floor=max(0.1 * scale, 0.05 * abs(centre)))
            observed.setdefault(column, {})[stat] = round(value, 4)
            expected.setdefault(column, {})[stat] = [round(centre - z_limit * spread, 4),
                                                     round(centre + z_limit * spread, 4)]
            scores[column] = max(scores.get(column, 0.0), round(abs(z), 2))
            if worst is None or abs(z) > worst[0]:
                worst = (abs(z), column, stat, value, centre)
    if worst is None:
        return Finding(True, None, None, f"fewer than {min_runs} earlier loaded runs with column profiles: "
                       "nothing to compare yet", "none", {"shift_z": {}})
    z, column, stat, value, centre = worst
    passed = z <= z_limit
    ratio = value / centre if centre else math.inf
    detail = (f"largest move: {column} {stat} {value:g} vs a usual {centre:g}, robust z {z:.1f} "
              f"(limit {z_limit:g})")
    if not passed:
        detail += _unit_hint(ratio) + ": the delivery is held; confirm the unit and the values with the vendor"
    return Finding(passed, observed, expected, detail, "robust_z", {"shift_z": scores})
