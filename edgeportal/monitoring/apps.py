from functools import partial

from django.apps import AppConfig
from django.utils.translation import gettext_lazy as _


class MonitoringConfig(AppConfig):
    name = "edgeportal.monitoring"
    verbose_name = _("Monitoring")

    def ready(self):
        # The apps below count through edgeportal.core.metrics; the dashboard's trend hears of the same events.
        from edgeportal.core import metric_listeners as listeners
        from edgeportal.monitoring import trend

        listeners.finished_listeners.append(partial(trend.safely, trend.trend_finished))
        listeners.refused_listeners.append(partial(trend.safely, trend.trend_refused))
        listeners.depths_listeners.append(partial(trend.safely, trend.trend_depths))
