"""gunicorn settings for the site (read by `gunicorn -c gunicorn.conf.py recsite.wsgi`), all from the environment."""

import os
from pathlib import Path

from recsite.env import env_bool, env_int, env_list, env_str, unsafe_bind_reasons
from recsite.logs import logging_config

bind = env_str("GUNICORN_BIND", f"127.0.0.1:{env_int('PORT', 8000)}")
# Pages are CPU-bound Python with short waits on MySQL and Milvus: a process a core, plus one.
workers = env_int("WEB_CONCURRENCY", min(2 * (os.cpu_count() or 1) + 1, 9))
threads = env_int("GUNICORN_THREADS", 1)
# A page budget is well under a second; a worker stuck for this long is killed and replaced.
timeout = env_int("GUNICORN_TIMEOUT", 30)
graceful_timeout = env_int("GUNICORN_GRACEFUL_TIMEOUT", 30)
keepalive = 5
# Recycled now and then, so a slow leak in any library never grows without bound.
max_requests = env_int("GUNICORN_MAX_REQUESTS", 5000)
max_requests_jitter = max_requests // 10
# The heartbeat file lives in memory: a container's overlay disk can stall it and get healthy workers killed.
worker_tmp_dir = "/dev/shm" if Path("/dev/shm").is_dir() else None
# Only these peers' X-Forwarded-Proto makes a request HTTPS (exact addresses: the TLS proxy in front).
# Django itself trusts no forwarding header; the proxy's address also goes in TRUSTED_PROXIES for X-Forwarded-For.
forwarded_allow_ips = ",".join(env_list("GUNICORN_FORWARDED_ALLOW_IPS", "127.0.0.1"))
proc_name = "recsite-web"
accesslog = "-"
access_log_format = '%(h)s "%(r)s" %(s)s %(B)s %(M)sms "%(a)s"'
logconfig_dict = logging_config(env_str("LOG_FORMAT", "text"), env_str("LOG_LEVEL", "INFO"), gunicorn=True)


def on_starting(server: object) -> None:
    """Refuses a public bind with development defaults; GUNICORN_ALLOW_INSECURE=true says you mean it."""
    reasons = unsafe_bind_reasons(list(server.cfg.bind), dict(os.environ))
    if reasons and not env_bool("GUNICORN_ALLOW_INSECURE", False):
        for reason in reasons:
            server.log.error("refusing to serve: %s", reason)
        raise SystemExit(
            "refusing to serve on a public address with development defaults: "
            + "; ".join(reasons)
            + ". Bind 127.0.0.1 behind a TLS proxy, or set DJANGO_PRODUCTION=true and DJANGO_SECRET_KEY."
        )


def post_worker_init(worker: object) -> None:
    """The first round of health checks starts as the worker boots, so no probe waits for one."""
    from recsite import health

    health.start_round()
