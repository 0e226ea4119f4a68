"""Ingress is denied by default; what shoal needs is let through."""

from __future__ import annotations

from tests.deploy.manifests import Obj, Rendered, selects


def _admits(policy: Obj, pod_labels: dict[str, str], port: int, namespace: str | None) -> bool:
    """Does `policy` let a pod (or, with `namespace`, any pod of that namespace) in on `port`?"""
    for rule in policy["spec"].get("ingress", []):
        ports = {p["port"] for p in rule.get("ports", [])}
        if ports and port not in ports:
            continue
        peers = rule.get("from")
        if peers is None:
            return True  # from anywhere
        for peer in peers:
            same_namespace = "podSelector" in peer and "namespaceSelector" not in peer
            if namespace is None and same_namespace:
                if selects(peer["podSelector"].get("matchLabels", {}), pod_labels):
                    return True
            elif namespace is not None and "namespaceSelector" in peer:
                wanted = peer["namespaceSelector"]["matchLabels"]
                if wanted == {"kubernetes.io/metadata.name": namespace}:
                    return True
    return False


def _policies_for(r: Rendered, labels: dict[str, str]) -> list[Obj]:
    return [
        p
        for p in r.of_kind("NetworkPolicy")
        if selects(p["spec"]["podSelector"].get("matchLabels", {}), labels)
    ]


def test_ingress_is_denied_unless_allowed(overlays: list[Rendered]) -> None:
    for r in overlays:
        deny = [p for p in r.of_kind("NetworkPolicy") if p["spec"]["podSelector"] == {}]
        assert deny and "ingress" not in deny[0]["spec"], r.name
        assert deny[0]["spec"]["policyTypes"] == ["Ingress"]


def test_redis_admits_shoal_and_keda_only(overlays: list[Rendered]) -> None:
    for r in overlays:
        redis_labels = r.get("StatefulSet", "redis")["spec"]["template"]["metadata"]["labels"]
        policies = _policies_for(r, redis_labels)
        for _, template in r.pod_templates():
            env = {e["name"] for c in template["spec"]["containers"] for e in c.get("env", [])}
            if "SHOAL_REDIS_URL" in env:
                labels = template["metadata"]["labels"]
                assert any(_admits(p, labels, 6379, None) for p in policies), (r.name, labels)
        assert any(_admits(p, {}, 6379, "keda") for p in policies), "KEDA must read the queues"
        assert not any(_admits(p, {"app": "stranger"}, 6379, None) for p in policies)


def test_the_gateway_is_reachable_and_worker_metrics_only_by_prometheus(
    overlays: list[Rendered],
) -> None:
    for r in overlays:
        gateway = r.get("Deployment", "gateway")["spec"]["template"]["metadata"]["labels"]
        assert any(_admits(p, {}, 8000, "anywhere") for p in _policies_for(r, gateway))
        worker = r.get("Deployment", "worker-webhook")["spec"]["template"]["metadata"]["labels"]
        policies = _policies_for(r, worker)
        assert any(_admits(p, {}, 9100, "monitoring") for p in policies)
        assert not any(_admits(p, {}, 9100, "elsewhere") for p in policies)
