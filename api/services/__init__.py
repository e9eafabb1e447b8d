"""What the routes call: the logic the v1 routes and the dashboard share, above the store.

A route module (`api.routes.*`) parses a request, calls a service or a `store` function and
shapes the answer; it never imports another route module, so the dashboard reaches the
same plots, exports, downloads, sweep documents and event streams as `/v1` through here.
Services hold no SQL either: every statement lives in `store/`.

- `reports`: plots of an experiment (cached), the comparison, CSV and JSON exports;
- `runs`: runs found by a filter and sort order (docs/filters.md), and the table of many
  runs (flat rows, JSON or CSV) the list and the dashboard share;
- `sweeps`: a sweep's statistics document and its plot;
- `events`: an experiment's live progress as server-sent events;
- `change_watch`: the one database poll behind every open event stream;
- `sse`: the server-sent-event loop the event and log streams share;
- `artifacts`: downloading an artifact (a file, or a folder zipped on the fly).
"""
