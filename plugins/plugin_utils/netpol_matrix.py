# -*- coding: utf-8 -*-
# Copyright: contributors to gpuops.cluster
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Who can reach whom under a set of NetworkPolicies (pure; the semantics of networking.k8s.io/v1).

An endpoint is ``{"name", "namespace", "labels", "ip"}`` (``namespace`` None for a host outside
the cluster, reachable through ``ipBlock`` peers only). A connection from A to B on a port is
allowed when A's egress allows it and B's ingress allows it:

- a pod no policy of its namespace selects for a direction is not isolated for that direction;
- an isolated pod accepts what the union of the rules of the policies selecting it allow;
- a rule with no peers matches every peer, a rule with no ports every port;
- a peer with only ``podSelector`` means pods of the policy's own namespace, with
  ``namespaceSelector`` (and maybe ``podSelector``) pods of the selected namespaces, ``ipBlock``
  the addresses in the CIDR minus ``except``;
- ``policyTypes`` defaults to Ingress, plus Egress when the policy has egress rules.
"""

from __future__ import absolute_import, annotations, division, print_function

__metaclass__ = type

import ipaddress

NAMESPACE_NAME_LABEL = "kubernetes.io/metadata.name"


def selector_matches(selector, labels):
    """A LabelSelector (matchLabels, matchExpressions) against a label dict; {} matches all."""
    selector = selector or {}
    labels = labels or {}
    for key, value in (selector.get("matchLabels") or {}).items():
        if labels.get(key) != value:
            return False
    for expr in selector.get("matchExpressions") or []:
        key, op, values = expr.get("key"), expr.get("operator"), expr.get("values") or []
        if op == "In" and labels.get(key) not in values:
            return False
        if op == "NotIn" and key in labels and labels[key] in values:
            return False
        if op == "Exists" and key not in labels:
            return False
        if op == "DoesNotExist" and key in labels:
            return False
        if op not in ("In", "NotIn", "Exists", "DoesNotExist"):
            raise ValueError("unknown selector operator %r" % (op,))
    return True


def _policy_types(policy):
    spec = policy.get("spec") or {}
    types = spec.get("policyTypes")
    if types:
        return set(types)
    return {"Ingress", "Egress"} if spec.get("egress") else {"Ingress"}


def _in_block(block, ip):
    if not ip:
        return False
    address = ipaddress.ip_address(ip)
    if address not in ipaddress.ip_network(block["cidr"], strict=False):
        return False
    return not any(address in ipaddress.ip_network(c, strict=False) for c in block.get("except") or [])


def _peer_matches(peer, policy_namespace, endpoint, namespace_labels):
    if "ipBlock" in peer:
        return _in_block(peer["ipBlock"], endpoint.get("ip"))
    if endpoint.get("namespace") is None:
        return False
    if "namespaceSelector" in peer:
        ns_labels = namespace_labels.get(endpoint["namespace"], {NAMESPACE_NAME_LABEL: endpoint["namespace"]})
        if not selector_matches(peer["namespaceSelector"], ns_labels):
            return False
    elif endpoint["namespace"] != policy_namespace:
        return False
    return selector_matches(peer.get("podSelector") or {}, endpoint.get("labels"))


def _port_matches(ports, port, protocol):
    if not ports:
        return True
    for item in ports:
        if item.get("protocol", "TCP") != protocol:
            continue
        if "port" not in item:
            return True
        low = item["port"]
        high = item.get("endPort", low)
        if isinstance(low, int) and low <= port <= high:
            return True
    return False


def _direction_allows(policies, endpoint, peer, port, protocol, direction, namespace_labels):
    """Whether ``endpoint`` lets traffic with ``peer`` through in ``direction`` (Ingress/Egress)."""
    if endpoint.get("namespace") is None:
        return True  # outside the cluster: no NetworkPolicy applies there
    selecting = [
        p
        for p in policies
        if (p.get("metadata") or {}).get("namespace") == endpoint["namespace"]
        and direction in _policy_types(p)
        and selector_matches((p.get("spec") or {}).get("podSelector") or {}, endpoint.get("labels"))
    ]
    if not selecting:
        return True
    rules_key, peers_key = ("ingress", "from") if direction == "Ingress" else ("egress", "to")
    for policy in selecting:
        namespace = policy["metadata"]["namespace"]
        for rule in (policy.get("spec") or {}).get(rules_key) or []:
            peers = rule.get(peers_key) or []
            if peers and not any(_peer_matches(pe, namespace, peer, namespace_labels) for pe in peers):
                continue
            if _port_matches(rule.get("ports"), port, protocol):
                return True
    return False


def allowed(policies, src, dst, port, protocol="TCP", namespace_labels=None):
    """True when ``src`` may open a connection to ``dst`` on ``port``/``protocol``."""
    labels = namespace_labels or {}
    return _direction_allows(policies, src, dst, port, protocol, "Egress", labels) and _direction_allows(
        policies, dst, src, port, protocol, "Ingress", labels
    )


def matrix(policies, endpoints, probes, namespace_labels=None):
    """``{(src name, dst name, port, protocol): bool}`` for every ordered pair and probe."""
    out = {}
    for src in endpoints:
        for dst in endpoints:
            if src is dst:
                continue
            for port, protocol in probes:
                out[(src["name"], dst["name"], port, protocol)] = allowed(
                    policies, src, dst, port, protocol, namespace_labels
                )
    return out


def _endpoint_in(selector, endpoint):
    """A baseline ``{namespace, pod_labels}`` or ``{cidr}`` declaration against an endpoint."""
    if "cidr" in selector:
        return _in_block({"cidr": selector["cidr"], "except": selector.get("except") or []}, endpoint.get("ip"))
    return endpoint.get("namespace") == selector.get("namespace") and all(
        (endpoint.get("labels") or {}).get(k) == v for k, v in (selector.get("pod_labels") or {}).items()
    )


def expected(plan, src, dst, port, protocol):
    """What the baseline's intent says about one connection (from the plan, not the policies).

    Allowed: DNS from any pod of a guarded namespace to the DNS pods; each declared allow; and
    anything between endpoints neither of which is in a guarded namespace. Everything else that
    touches a guarded namespace is denied.
    """
    guarded = {n for n, item in (plan.get("namespaces") or {}).items() if item.get("default_deny")}
    src_guarded = src.get("namespace") in guarded
    dst_guarded = dst.get("namespace") in guarded
    dns = plan.get("dns") or {}
    if (
        src_guarded
        and _endpoint_in({"namespace": dns.get("namespace"), "pod_labels": dns.get("pod_labels")}, dst)
        and {"port": port, "protocol": protocol} in dns.get("ports", [])
    ):
        return True
    for allow in plan.get("allows") or []:
        if (
            _endpoint_in(allow["from"], src)
            and _endpoint_in(allow["to"], dst)
            and {"protocol": protocol, "port": port} in allow["ports"]
        ):
            return True
    if not src_guarded and not dst_guarded:
        return True
    # Connections into an unmanaged namespace's pods are governed by that namespace's own
    # policies: the baseline's intent only covers the guarded side.
    return False


def mismatches(plan, policies, endpoints, probes, namespace_labels=None):
    """Connections where the policies disagree with the baseline's intent; empty when they agree."""
    computed = matrix(policies, endpoints, probes, namespace_labels)
    by_name = {e["name"]: e for e in endpoints}
    out = []
    for (src, dst, port, protocol), is_allowed in sorted(computed.items()):
        want = expected(plan, by_name[src], by_name[dst], port, protocol)
        if want != is_allowed:
            out.append(
                "%s -> %s %s/%d: policies %s, expected %s"
                % (src, dst, protocol, port, "allow" if is_allowed else "deny", "allow" if want else "deny")
            )
    return out
