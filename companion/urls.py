"""Root URL configuration: the API under /api/v1/, the pages, the admin."""

from django.contrib import admin
from django.urls import include, path
from drf_spectacular.views import SpectacularAPIView, SpectacularSwaggerView

urlpatterns = [
    path("admin/", admin.site.urls),
    # Session login for the browser pages (the chat page and the staff-only labeling tool).
    path("accounts/", include("django.contrib.auth.urls")),
    path("api/v1/schema/", SpectacularAPIView.as_view(), name="api-schema"),
    path("api/v1/docs/", SpectacularSwaggerView.as_view(url_name="api-schema"), name="api-docs"),
    path("", include("scheduling.urls")),
    path("", include("labeling.urls")),
    path("", include("chat.urls")),
]
