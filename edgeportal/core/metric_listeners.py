"""Who else hears of what edgeportal.core.metrics counts as it happens: the dashboard's trend
(edgeportal.monitoring.trend), connected in MonitoringConfig.ready() since core imports no app.

Apart from core.metrics so that setting Django up imports no prometheus_client: it reads PROMETHEUS_MULTIPROC_DIR
once, when first imported, and a test run sets its own folder after Django is set up.
"""

from collections.abc import Callable

# Called once the transaction that stored them commits, as the counters are:
finished_listeners: list[Callable] = []  # with the finished jobs' JobLatency records
refused_listeners: list[Callable] = []  # with the refusal's rule
# Called at once:
depths_listeners: list[Callable] = []  # with each lane's depth (all pools), as beat's sweep read them
