"""docker-compose.yml's production limits: a Redis password, one Redis DB per use, bounded workers."""

from __future__ import annotations

import ipaddress
import json
import os
import subprocess
import sys
from pathlib import Path
from urllib.parse import urlsplit

import yaml

REPO_ROOT = Path(__file__).resolve().parent.parent.parent
COMPOSE = yaml.safe_load((REPO_ROOT / "docker-compose.yml").read_text())
SERVICES = COMPOSE["services"]


def test_redis_needs_a_password_and_broker_cache_and_channels_use_separate_databases():
    redis_command = SERVICES["redis"]["command"]
    assert redis_command[redis_command.index("--requirepass") + 1] == "${REDIS_PASSWORD:?set REDIS_PASSWORD}"
    env = SERVICES["web"]["environment"]
    password = "${REDIS_PASSWORD:?set REDIS_PASSWORD}"  # compose fills it in; its "?" is no URL query
    names = ("CELERY_BROKER_URL", "REDIS_CACHE_URL", "REDIS_CHANNELS_URL")
    urls = {name: urlsplit(env[name].replace(password, "PW")) for name in names}
    assert {name: url.path for name, url in urls.items()} == {
        "CELERY_BROKER_URL": "/0",
        "REDIS_CACHE_URL": "/1",
        "REDIS_CHANNELS_URL": "/2",
    }
    assert {(url.password, url.hostname) for url in urls.values()} == {("PW", "redis")}


def test_every_service_has_a_memory_limit():
    limits = {name: service["deploy"]["resources"]["limits"]["memory"] for name, service in SERVICES.items()}
    assert limits == {
        "postgres": "1g",
        "redis": "256m",
        "migrate": "512m",
        "web": "1g",
        "proxy": "128m",
        "worker": "512m",
        "planner": "2g",
        "beat": "512m",
        "flower": "256m",
    }


def test_workers_recycle_children_and_planners_use_one_torch_thread_each():
    tasks = {
        name: [arg for arg in SERVICES[name]["command"] if arg.startswith("--max-tasks-per-child=")]
        for name in ("worker", "planner")
    }
    assert tasks == {"worker": ["--max-tasks-per-child=1000"], "planner": ["--max-tasks-per-child=200"]}
    planner_env = SERVICES["planner"]["environment"]
    assert (planner_env["OMP_NUM_THREADS"], planner_env["MKL_NUM_THREADS"]) == ("1", "1")


def test_settings_read_the_separate_redis_urls():
    script = (
        "import json, django; django.setup(); from django.conf import settings as s; print(json.dumps(["
        "s.CELERY_BROKER_URL, s.CACHES['default']['LOCATION'], s.CHANNEL_LAYERS['default']['CONFIG']['hosts']"
        "]))"
    )
    env = dict(os.environ)
    env.update(
        DJANGO_SETTINGS_MODULE="companion.settings",
        COMPANION_DEV_SECRET="1",
        DATABASE_URL="postgres://nobody@127.0.0.1:1/none",
        REDIS_URL="redis://:pw@redis:6379/0",
        CELERY_BROKER_URL="redis://:pw@redis:6379/0",
        REDIS_CACHE_URL="redis://:pw@redis:6379/1",
        REDIS_CHANNELS_URL="redis://:pw@redis:6379/2",
    )
    result = subprocess.run(
        [sys.executable, "-c", script], cwd=REPO_ROOT, env=env, capture_output=True, text=True, check=True
    )
    assert json.loads(result.stdout) == [
        "redis://:pw@redis:6379/0",
        "redis://:pw@redis:6379/1",
        ["redis://:pw@redis:6379/2"],
    ]


def test_web_scales_behind_the_proxy_which_upgrades_websockets_and_is_the_one_trusted_hop():
    # web publishes no host port (N replicas could not share one); the proxy owns :8000
    assert "ports" not in SERVICES["web"]
    assert SERVICES["proxy"]["ports"] == ["8000:80"]
    assert SERVICES["proxy"]["image"].startswith("nginx:")
    mount = "./ops/nginx/companion.conf:/etc/nginx/conf.d/default.conf:ro"
    assert SERVICES["proxy"]["volumes"] == [mount]
    conf = (REPO_ROOT / "ops/nginx/companion.conf").read_text()
    assert "server web:8000" in conf
    assert "proxy_set_header Upgrade $http_upgrade;" in conf
    assert "proxy_set_header Connection $connection_upgrade;" in conf
    assert conf.count("proxy_set_header X-Forwarded-For $proxy_add_x_forwarded_for;") == 2
    # the proxy's fixed address is what web believes X-Forwarded-For from
    address = SERVICES["proxy"]["networks"]["default"]["ipv4_address"]
    assert SERVICES["web"]["environment"]["TRUSTED_PROXIES"] == f"${{TRUSTED_PROXIES:-{address}/32}}"
    subnet = COMPOSE["networks"]["default"]["ipam"]["config"][0]["subnet"]
    assert ipaddress.ip_address(address) in ipaddress.ip_network(subnet)
    assert conf.count("{") == conf.count("}")
