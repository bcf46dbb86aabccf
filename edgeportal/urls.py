from django.contrib import admin
from django.contrib.auth import views as auth_views
from django.contrib.auth.decorators import login_not_required
from django.urls import include, path
from django.views.generic import RedirectView
from django.views.i18n import set_language

from edgeportal.jobs import api as jobs_api
from edgeportal.jobs import live as jobs_live
from edgeportal.jobs import views as jobs_views
from edgeportal.jobs.template_try import template_try
from edgeportal.latency import views as latency_views
from edgeportal.monitoring import views as monitoring_views
from edgeportal.prompts import views as prompts_views
from edgeportal.tuning import views as tuning_views

jobs_patterns = (
    [
        path("", jobs_views.job_list, name="list"),
        path("new/", jobs_views.job_new, name="new"),
        path("new/preview/", jobs_views.job_preview, name="preview"),
        path("new/route/", jobs_views.job_route, name="route"),
        path("<int:job_id>/", jobs_views.job_detail, name="detail"),
    ],
    "jobs",
)

prompts_patterns = (
    [
        path("", prompts_views.template_list, name="list"),
        path("new/", prompts_views.template_new, name="new"),
        path("preview/", prompts_views.template_preview, name="preview"),
        path("cache/clear/", prompts_views.cache_clear_view, name="cache-clear"),
        path("<slug:slug>/edit/", prompts_views.template_edit, name="edit"),
        path("<slug:slug>/try/", template_try, name="try"),
        path("<slug:slug>/versions/", prompts_views.template_versions, name="versions"),
        path("<slug:slug>/versions/<int:version>/rollback/", prompts_views.template_rollback_view, name="rollback"),
    ],
    "prompts",
)

tuning_patterns = (
    [
        path("", tuning_views.tuning_page, name="page"),
        path("workers/", tuning_views.tuning_workers, name="workers"),
    ],
    "tuning",
)

latency_patterns = (
    [
        path("", latency_views.history, name="history"),
        path("export.csv", latency_views.history_csv, name="export"),
        path("batches/", latency_views.batches, name="batches"),
    ],
    "latency",
)

api_patterns = (
    [
        path("jobs", jobs_api.job_create, name="job-create"),
        path("jobs/<int:job_id>", jobs_api.job_detail, name="job-detail"),
        path("templates", jobs_api.template_list, name="template-list"),
    ],
    "api",
)

monitoring_patterns = ([path("", monitoring_views.dashboard, name="dashboard")], "monitoring")

urlpatterns = [
    path("", RedirectView.as_view(pattern_name="jobs:list"), name="home"),
    path("login/", auth_views.LoginView.as_view(), name="login"),
    path("logout/", auth_views.LogoutView.as_view(), name="logout"),
    # The header's language switcher (a POST form): also on the login page, before anyone is logged in.
    path("language/", login_not_required(set_language), name="set_language"),
    path("jobs/", include(jobs_patterns)),
    path("templates/", include(prompts_patterns)),
    path("tuning/", include(tuning_patterns)),
    path("api/", include(api_patterns)),
    path("v1/", include("edgeportal.openai_api.urls")),  # OpenAI-compatible (async: edgeportal.asgi)
    path("stream/jobs/<int:job_id>", jobs_live.job_stream, name="job-stream"),  # async too
    path("latency/", include(latency_patterns)),
    path("lab/", include("edgeportal.lab.urls")),
    path("dashboard/", include(monitoring_patterns)),
    path("boards/", include("edgeportal.boards.urls")),
    path("metrics", monitoring_views.metrics_view, name="metrics"),
    path("healthz", monitoring_views.healthz, name="healthz"),
    path("readyz", monitoring_views.readyz, name="readyz"),
    path("admin/", admin.site.urls),
]

# Unreachable database or Redis: 503 (JSON under /api/), never a 500 page (edgeportal/errors.py).
handler500 = "edgeportal.errors.server_error"
