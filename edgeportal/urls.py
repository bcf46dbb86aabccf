from django.contrib import admin
from django.contrib.auth import views as auth_views
from django.urls import include, path
from django.views.generic import RedirectView

from edgeportal.jobs import api as jobs_api
from edgeportal.jobs import views as jobs_views

jobs_patterns = (
    [
        path("", jobs_views.job_list, name="list"),
        path("new/", jobs_views.job_new, name="new"),
        path("<int:job_id>/", jobs_views.job_detail, name="detail"),
    ],
    "jobs",
)

api_patterns = (
    [
        path("jobs", jobs_api.job_create, name="job-create"),
        path("jobs/<int:job_id>", jobs_api.job_detail, name="job-detail"),
    ],
    "api",
)

urlpatterns = [
    path("", RedirectView.as_view(pattern_name="jobs:list"), name="home"),
    path("login/", auth_views.LoginView.as_view(), name="login"),
    path("logout/", auth_views.LogoutView.as_view(), name="logout"),
    path("jobs/", include(jobs_patterns)),
    path("api/", include(api_patterns)),
    path("admin/", admin.site.urls),
]
