"""The production-readiness checklist that ticks itself (checklist.yml + journals + sign-offs)."""

from drillbook.checklist.model import Checklist, Evidence, Item, load_checklist
from drillbook.checklist.status import ItemStatus, evaluate

__all__ = ["Checklist", "Evidence", "Item", "ItemStatus", "evaluate", "load_checklist"]
