"""What every drill shares: errors, inventory, Ansible runner, lifecycle, probes, HAProxy, metrics."""
