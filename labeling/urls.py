"""URL routes of the labeling app (included by companion/urls.py): everything under /labeling/."""

from django.urls import URLPattern, URLResolver, path

from labeling import views

app_name = "labeling"
urlpatterns: list[URLPattern | URLResolver] = [
    path("labeling/", views.QueuePage.as_view(), name="queue"),
    path("labeling/tasks/<int:task_id>/", views.TaskPage.as_view(), name="task"),
    path("labeling/review/", views.ReviewPage.as_view(), name="review"),
    path("labeling/agreement/", views.AgreementPage.as_view(), name="agreement"),
    path("labeling/api/time/", views.TimeConvertApi.as_view(), name="api-time"),
    path("labeling/api/tasks/<int:task_id>/label/", views.LabelApi.as_view(), name="api-label"),
    path("labeling/api/labels/<int:label_id>/review/", views.ReviewApi.as_view(), name="api-review"),
]
