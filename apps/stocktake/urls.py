from django.urls import path

app_name = "stocktake"
urlpatterns: list = []
