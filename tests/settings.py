"""Test settings: the real engines, with cheap passwords and an isolated Redis and database.

* PostgreSQL: ``DATABASE_URL`` if set, else the embedded server under ``var/``
  (``COMPANION_EMBEDDED=1``). Each test run gets its own database (``test_companion_<pid>``)
  so concurrent runs never collide.
* Redis: ``REDIS_URL`` if set, else a private embedded Redis under a temporary folder for
  this run, so broker queues and channel groups of concurrent runs stay apart.
"""

import os
import tempfile
from pathlib import Path

from companion import embedded

os.environ.setdefault("COMPANION_DEV_SECRET", "1")
# The suite runs with DEBUG off (as production does) and asks for the embedded engines explicitly.
os.environ.setdefault("COMPANION_EMBEDDED", "1")
# Test clients and live servers speak plain HTTP; tests/platform checks the HTTPS configuration.
os.environ.setdefault("DJANGO_INSECURE_HTTP", "1")
if not os.environ.get("REDIS_URL"):
    embedded.ensure_redis(Path(tempfile.mkdtemp(prefix="companion-test-redis-")))

from companion.settings import *  # noqa: F403
from companion.settings import DATABASES, REST_FRAMEWORK

PASSWORD_HASHERS = ["tests.hashers.FastPBKDF2PasswordHasher"]
DATABASES["default"]["TEST"] = {"NAME": f"test_companion_{os.getpid()}"}
# Throttling stays on (it is behaviour under test) but generous unless a test narrows it.
REST_FRAMEWORK["DEFAULT_THROTTLE_RATES"] = {"anon": "1000/minute", "user": "10000/minute"}
