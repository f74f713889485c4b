"""Kubernetes reader: one consistent sample of a cluster, as plain records.

Pure: no Django. ``client.take_sample`` lists the API with paging, ``parse`` turns wire JSON
into the records of ``records``, ``quantity`` parses resource quantities, and
``fake_apiserver`` is a local HTTP stand-in for tests and the benchmark.
"""

from costapp.kube.client import KubeAuthError, KubeError, KubeUnavailable, take_sample
from costapp.kube.quantity import QuantityError, parse_quantity
from costapp.kube.records import (
    NamespaceSnapshot,
    NodeSnapshot,
    PodSnapshot,
    Sample,
    Skipped,
    Usage,
)

__all__ = [
    "KubeAuthError",
    "KubeError",
    "KubeUnavailable",
    "NamespaceSnapshot",
    "NodeSnapshot",
    "PodSnapshot",
    "QuantityError",
    "Sample",
    "Skipped",
    "Usage",
    "parse_quantity",
    "take_sample",
]
