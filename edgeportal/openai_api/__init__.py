"""The OpenAI-compatible API (/v1/): chat and text completions, with streaming, on the node's own entry and
scheduler: the same guard, cache, admission, deadlines and latency records as /api/jobs."""
