"""costapp's models, one module per area; import them from here."""

from costapp.models.billing import BillingCharge, BillingImport, CatalogPrice, CustomPrice
from costapp.models.budgets import Budget, BudgetAlert
from costapp.models.core import (
    IDLE,
    SHARED,
    UNALLOCATED,
    AllocationLine,
    AllocationPolicy,
    CapacityType,
    Cluster,
    ClusterDay,
    ClusterHour,
    CostCentre,
    Job,
    Namespace,
    NamespaceTeam,
    Node,
    NodeHour,
    Overhead,
    Pod,
    PodHour,
    PriceSource,
    Team,
)
from costapp.models.ownership import OwnershipChange, OwnershipSettings
from costapp.models.planner import PoolPlanSettings, Recommendation
from costapp.models.sources import BillingDelivery, BillingSource

__all__ = [
    "BillingCharge",
    "BillingDelivery",
    "BillingSource",
    "BillingImport",
    "CatalogPrice",
    "CustomPrice",
    "IDLE",
    "SHARED",
    "UNALLOCATED",
    "AllocationLine",
    "AllocationPolicy",
    "CapacityType",
    "Cluster",
    "ClusterDay",
    "ClusterHour",
    "CostCentre",
    "Job",
    "Namespace",
    "NamespaceTeam",
    "Node",
    "NodeHour",
    "Overhead",
    "Pod",
    "PodHour",
    "PriceSource",
    "Team",
    "Budget",
    "BudgetAlert",
    "OwnershipChange",
    "OwnershipSettings",
    "PoolPlanSettings",
    "Recommendation",
]
