"""Root URL configuration: the API under /api/v1/, the pages, the admin, the operator's endpoints."""

from django.contrib import admin
from django.urls import include, path
from drf_spectacular.views import SpectacularAPIView, SpectacularSwaggerView

from companion.ops import views as ops_views

urlpatterns = [
    path("admin/", admin.site.urls),
    # Session login for the browser pages (the chat page and the staff-only labeling tool).
    path("accounts/", include("django.contrib.auth.urls")),
    path("api/v1/schema/", SpectacularAPIView.as_view(), name="api-schema"),
    path("api/v1/docs/", SpectacularSwaggerView.as_view(url_name="api-schema"), name="api-docs"),
    # The operator's view (README "Operating it"): liveness, readiness, the Prometheus scrape.
    path("healthz", ops_views.healthz, name="healthz"),
    path("readyz", ops_views.readyz, name="readyz"),
    path("metrics", ops_views.metrics_view, name="metrics"),
    path("", include("scheduling.urls")),
    path("", include("labeling.urls")),
    path("", include("chat.urls")),
]
