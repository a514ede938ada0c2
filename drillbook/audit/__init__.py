"""Audits: outside-in checks of the service (audit.http) and on its hosts (audit.hosts).

Each audit is a drill whose checks carry these names; checklist.yml names them as
``http.<check>`` / ``hosts.<check>``, and ``inv checklist`` refuses a name not listed here.
"""

AUDIT_CHECKS: dict[str, tuple[str, ...]] = {
    "audit.http": (
        "security_headers",
        "hsts",
        "cors_credentials",
        "rate_limit",
        "body_limit",
        "request_id",
        "error_format",
        "pagination_stable",
        "openapi",
        "metrics_endpoint",
    ),
    "audit.hosts": (
        "service_user_not_root",
        "redis_persistence",
        "postgres_settings",
        "backup_schedule",
        "no_world_readable_secrets",
    ),
}
