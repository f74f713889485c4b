"""From a registered Cluster to an API client and a sample (the Django side of the reader).

``costapp.collect.sample_cluster`` calls ``take_cluster_sample``; everything below that is the
pure reader in ``costapp.kube.client``.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import yaml

from costapp.kube.client import (
    api_client_from_kubeconfig_dict,
    api_client_in_cluster,
    take_sample,
)
from costapp.kube.credentials import CredentialsError, decrypt_kubeconfig
from costapp.kube.records import Sample

if TYPE_CHECKING:
    from costapp.models import Cluster

__all__ = ["ERR_NO_CREDENTIALS", "api_client_for", "take_cluster_sample"]

ERR_NO_CREDENTIALS = (
    "cluster {name!r} has no credentials: register it with "
    "`manage.py add_cluster {name} --kubeconfig PATH` or `--in-cluster`"
)


def api_client_for(cluster: Cluster) -> Any:
    """A ``kubernetes.client.ApiClient`` for a registered cluster (in-cluster or kubeconfig)."""
    if cluster.in_cluster:
        return api_client_in_cluster()
    if not cluster.kubeconfig_encrypted:
        raise CredentialsError(ERR_NO_CREDENTIALS.format(name=cluster.name))
    config = yaml.safe_load(decrypt_kubeconfig(cluster.kubeconfig_encrypted))
    return api_client_from_kubeconfig_dict(config, context=cluster.kube_context or None)


def take_cluster_sample(cluster: Cluster, **kwargs: Any) -> Sample:
    """One sample of a registered cluster; ``kwargs`` go to ``take_sample``."""
    api_client = api_client_for(cluster)
    try:
        return take_sample(api_client, **kwargs)
    finally:
        api_client.close()
