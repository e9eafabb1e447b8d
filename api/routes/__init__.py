"""One router per resource: experiments, queues, health (healthz/readyz/metrics)."""
