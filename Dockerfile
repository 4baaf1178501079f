# One image for web, worker and beat (docker-compose.yml picks the command).
FROM python:3.11-slim-bookworm

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    DJANGO_SETTINGS_MODULE=companion.settings

RUN useradd --create-home --uid 1000 companion \
    # prometheus-client's multiprocess folder: a fresh named volume takes this owner (compose).
    && mkdir -p /var/lib/companion/metrics && chown companion /var/lib/companion/metrics
WORKDIR /app

# The CPU build of torch first: the default index would pull several GB of CUDA packages.
RUN pip install --no-cache-dir "torch==2.13.0" --index-url https://download.pytorch.org/whl/cpu
COPY pyproject.toml README.md ./
COPY companion ./companion
COPY chat ./chat
COPY scheduling ./scheduling
COPY labeling ./labeling
COPY manage.py ./
RUN pip install --no-cache-dir . \
    && DJANGO_SECRET_KEY=collectstatic-only DATABASE_URL=postgres://unused@localhost/unused \
       REDIS_URL=redis://localhost:6379/0 python manage.py collectstatic --no-input

USER companion
EXPOSE 8000
# uvicorn as `make run` starts it (companion.stack.web_command): uvloop, httptools, websockets.
CMD ["uvicorn", "companion.asgi:application", "--host", "0.0.0.0", "--port", "8000", "--loop", "uvloop", \
     "--http", "httptools", "--ws", "websockets-sansio", "--no-proxy-headers", "--lifespan", "off"]
