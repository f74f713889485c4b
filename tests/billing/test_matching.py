"""Tying bill lines to nodes: instance keys, cluster tags, node vs overhead."""

from __future__ import annotations

from datetime import UTC, datetime
from decimal import Decimal

import pytest

from costapp.billing.focus import (
    FocusCharge,
    charge_kind,
    cluster_from_charge,
    cluster_from_tags,
    instance_id_from_provider_id,
    iter_focus_rows,
    node_match_keys,
    resource_keys_from_focus,
)

VMSS = (
    "/subscriptions/9EC51CFD/resourceGroups/MC_rg_AKS_eastus/providers/Microsoft.Compute/"
    "virtualMachineScaleSets/aks-pool1-123-vmss"
)


@pytest.mark.parametrize(
    ("provider_id", "key"),
    [
        ("aws:///us-east-1a/i-0abc", "i-0abc"),
        ("aws://us-east-1a/i-0abc", "i-0abc"),
        ("gce://my-project/us-central1-a/gke-pool-1-abcd", "gke-pool-1-abcd"),
        (f"azure://{VMSS}/virtualMachines/3", (VMSS + "/virtualMachines/3").lower()),
        ("alicloud://cn-hangzhou.i-bp1abc", "i-bp1abc"),
        ("", None),
        (None, None),
    ],
)
def test_instance_id_from_provider_id(provider_id, key):
    assert instance_id_from_provider_id(provider_id) == key


@pytest.mark.parametrize(
    ("resource_id", "keys"),
    [
        ("arn:aws:ec2:us-east-1:123456789012:instance/i-0abc", ("i-0abc",)),
        ("arn:ats:el2:us-test-2:123:instance/i-0l16f7b530252bl71", ("i-0l16f7b530252bl71",)),
        ("i-0l16f7b530252bl71", ("i-0l16f7b530252bl71",)),
        (
            "//compute.googleapis.com/projects/p/zones/z/instances/gke-pool-1-abcd",
            ("gke-pool-1-abcd",),
        ),
        (VMSS.upper(), (VMSS.lower(),)),
        ("", ()),
        (None, ()),
    ],
)
def test_resource_keys_from_focus(resource_id, keys):
    assert resource_keys_from_focus(resource_id) == keys


def test_aws_and_gcp_node_and_bill_keys_meet():
    assert set(node_match_keys("aws:///us-east-1a/i-0abc")) & set(
        resource_keys_from_focus("arn:aws:ec2:us-east-1:1:instance/i-0abc")
    )
    assert set(node_match_keys("gce://p/z/gke-n1")) & set(
        resource_keys_from_focus("//compute.googleapis.com/projects/p/zones/z/instances/gke-n1")
    )


def test_azure_scale_set_instance_matches_its_instance_and_its_scale_set_case_insensitively():
    keys = node_match_keys(f"azure://{VMSS}/virtualMachines/3")
    assert len(keys) == 2
    assert resource_keys_from_focus(VMSS.lower())[0] in keys
    assert resource_keys_from_focus(VMSS + "/virtualmachines/3")[0] in keys
    assert resource_keys_from_focus(VMSS + "/virtualmachines/4")[0] not in keys


@pytest.mark.parametrize(
    ("tags", "cluster"),
    [
        ({"aws:eks:cluster-name": "prod"}, "prod"),
        ({"eks:cluster-name": "prod"}, "prod"),
        ({"kubernetes.io/cluster/Prod-1": "owned"}, "Prod-1"),
        ({"kubernetes.io/cluster/prod": "shared"}, "prod"),
        ({"kubernetes.io/cluster/prod": "something"}, None),
        ({"k8s-cluster": "dev"}, "dev"),
        ({"aks-managed-cluster-name": "AnalyticsEngine"}, "AnalyticsEngine"),
        ({"AKS": "aks1"}, "aks1"),
        ({"goog-k8s-cluster-name": "gke1"}, "gke1"),
        ({"ack.aliyun.com": "c123"}, "c123"),
        ({" Aws:EKS:Cluster-Name ": "prod"}, "prod"),
        ({"application": "x"}, None),
        ({}, None),
        (None, None),
    ],
)
def test_cluster_from_tags(tags, cluster):
    assert cluster_from_tags(tags) == cluster


def charge(**kw) -> FocusCharge:
    base = dict(
        row=2,
        charge_period_start=datetime(2024, 9, 1, tzinfo=UTC),
        charge_period_end=datetime(2024, 9, 1, 1, tzinfo=UTC),
        effective_cost=Decimal("0.1"),
        billing_currency="USD",
    )
    return FocusCharge(**(base | kw))


def test_charge_kinds():
    assert (
        charge_kind(charge(service_name="Amazon Elastic Container Service for Kubernetes"))
        == "control-plane"
    )
    assert charge_kind(charge(service_name="Azure Kubernetes Service")) == "control-plane"
    node = charge(
        service_category="Compute",
        resource_id="i-0abc",
        consumed_unit="Hours",
        service_name="Amazon Elastic Compute Cloud",
    )
    assert charge_kind(node) == "node"
    transfer = charge(service_category="Compute", resource_id="i-0abc", consumed_unit="GB")
    assert charge_kind(transfer) == "other"
    nat = charge(
        service_category="Compute",
        resource_id="arn:aws:ec2:r:1:natgateway/nat-1",
        consumed_unit="Hours",
        charge_description="$0.045 per NAT Gateway Hour",
    )
    assert charge_kind(nat) == "nat"
    assert charge_kind(charge(service_name="Elastic Load Balancing")) == "load-balancer"
    assert charge_kind(charge(resource_type="volume")) == "volume"


def test_eks_cluster_fee_is_attributed_by_its_arn_when_untagged():
    fee = charge(
        service_name="Amazon Elastic Container Service for Kubernetes",
        resource_id="arn:aws:eks:us-east-1:1:cluster/prod",
    )
    assert cluster_from_charge(fee) == "prod"


def test_sample_kinds_are_stable(focus_sample):
    from collections import Counter

    kinds = Counter(charge_kind(c) for c in iter_focus_rows(focus_sample))
    assert kinds["node"] == 31
    assert kinds["control-plane"] == 3  # EKS, AKS, ROSA
    assert kinds["nat"] == 13
