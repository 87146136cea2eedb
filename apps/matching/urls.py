from django.urls import path

from . import views

app_name = "matching"
urlpatterns = [
    path("connections/", views.connection_list, name="connections"),
    path("<int:pk>/interest/", views.match_interest, name="interest"),
]
