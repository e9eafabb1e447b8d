"""The ground floor: what every service process shares (settings, broker wake-ups, logging).

Imported by the API, the worker, the migrations and the command lines; imports only the
store and the training core below it (see docs/architecture.md)."""
