"""The operator's view of the stack: health checks, the ``/metrics`` scrape, JSON logs, worker checks.

It sits in the project package (``companion``), above the apps: it reads scheduling's table and
both apps' metrics, and no app imports it.
"""
