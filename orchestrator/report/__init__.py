"""`heal report`: what the ledger says about pipeline health, as text, JSON or one HTML page.

:func:`build_report` works out the failure patterns (:mod:`orchestrator.report.build`);
:func:`render_text` prints them; :func:`render_html` makes a self-contained page with four
plots drawn as inline SVG, no scripts and no network (:mod:`orchestrator.report.html`):
runs per day by status, latency percentiles per step, a timeline of remediation events,
and quarantined rows by reason. Prometheus metrics are in :mod:`orchestrator.observability`.
"""

from orchestrator.report.build import Report, build_report, render_text
from orchestrator.report.html import PLOTS, render_html

__all__ = ["PLOTS", "Report", "build_report", "render_html", "render_text"]
