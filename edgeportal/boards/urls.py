from django.urls import path

from edgeportal.boards import views

app_name = "boards"
urlpatterns = [path("<slug:slug>/", views.board_page, name="board")]
