from django.urls import path

app_name = "matching"
urlpatterns: list = []
