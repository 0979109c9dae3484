"""Read models built from the event log (message status, funnels, latency, follow-ups); planned in issue 6."""
