"""Every word the dashboard's pages and script share with the server, from its one source.

The statuses, queues and sweep metrics come from `store.vocabulary`; the plot kinds are the
API's own. `template_globals()` hands them to every template (Jinja globals); `base.html`
writes `script_vocabulary()` into the page as JSON (`data-vocabulary` on <body>) for
`dashboard.js`, so no list is written out again in HTML or JavaScript.

Imports nothing heavy: the command lines (`ewc results --plot-kind`) read it too.
"""

from __future__ import annotations

from typing import Any

from store.vocabulary import FINISHED_STATUSES, QUEUES, REPLICATE_KEYS, STATUSES, SWEEP_METRICS

#: The plots of an experiment: `/plots/<kind>.png`.
PLOT_KINDS: tuple[str, ...] = ("accuracy-matrix", "curves")
#: The overlays of several experiments: `/v1/experiments/compare/plot.png?kind=<kind>`.
COMPARE_PLOT_KINDS: tuple[str, ...] = ("accuracy", "average", "loss", "diff")


def script_vocabulary() -> dict[str, Any]:
    """What `dashboard.js` needs to know (JSON-serialisable)."""
    return {"statuses": list(STATUSES), "finished_statuses": list(FINISHED_STATUSES)}


def template_globals() -> dict[str, Any]:
    """The vocabulary every template may name, and the script's as `vocabulary`."""
    return {
        "statuses": STATUSES,
        "finished_statuses": FINISHED_STATUSES,
        "queues": QUEUES,
        "plot_kinds": PLOT_KINDS,
        "compare_plot_kinds": COMPARE_PLOT_KINDS,
        "sweep_metrics": SWEEP_METRICS,
        "replicate_keys": REPLICATE_KEYS,
        "vocabulary": script_vocabulary(),
    }
