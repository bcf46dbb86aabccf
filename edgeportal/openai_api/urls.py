from django.urls import path

from edgeportal.openai_api import views

app_name = "openai"
urlpatterns = [
    path("models", views.models, name="models"),
    path("chat/completions", views.chat_completions, name="chat-completions"),
    path("completions", views.completions, name="completions"),
]
