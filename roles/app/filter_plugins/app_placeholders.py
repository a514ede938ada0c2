"""``${name}`` placeholders in the app role's command, environment and hooks.

The start command names paths that exist only once a release is in place (its
directory, its virtualenv) and values drillbook changes when it starts an extra
instance itself (the port, the database of a restore drill). Jinja cannot be
used for them: the inventory is templated before the release is known. The
role fills ``${release}``, ``${venv}``, ``${version}``, ``${host}``, ``${port}``,
``${instance}`` and ``${database_url}``; drillbook (``--boot-app``) fills the
same names with ``drillbook.core.profile.substitute``, so one command serves both.
"""

from __future__ import annotations

import re
from typing import Any

from ansible.errors import AnsibleFilterError

_PLACEHOLDER = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_]*)\}")


def app_substitute(value: Any, values: dict[str, Any]) -> Any:
    """``value`` (a string, list or dict, deeply) with every ``${name}`` replaced; unknown names fail."""

    def one(match: re.Match[str]) -> str:
        name = match.group(1)
        if name not in values:
            known = ", ".join("${%s}" % n for n in sorted(values))
            raise AnsibleFilterError(f"app: unknown placeholder ${{{name}}} (known: {known})")
        return str(values[name])

    if isinstance(value, str):
        return _PLACEHOLDER.sub(one, value)
    if isinstance(value, (list, tuple)):
        return [app_substitute(v, values) for v in value]
    if isinstance(value, dict):
        return {str(k): app_substitute(v, values) for k, v in value.items()}
    return value


class FilterModule:
    def filters(self) -> dict[str, Any]:
        return {"app_substitute": app_substitute}
