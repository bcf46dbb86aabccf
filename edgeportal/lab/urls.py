from django.urls import path

from edgeportal.lab import views

app_name = "lab"
urlpatterns = [
    path("", views.run_list, name="list"),
    path("<int:run_id>/", views.run_detail, name="detail"),
]
