"""The cluster DNS add-on as kubeadm installs it (CoreDNS behind the Service kube-system/kube-dns),
and the endpoints controller's view of it, collapsed.

The control plane, where CoreDNS runs, is not simulated: at the first pass the controller creates
the Service `kube-dns` (labels `k8s-app: kube-dns`, `kubernetes.io/name: CoreDNS`, selector
`k8s-app: kube-dns`, cluster IP 10.96.0.10, ports dns 53/UDP, dns-tcp 53/TCP, metrics 9153/TCP,
as kubeadm's manifest) and its Endpoints with the two CoreDNS replicas' addresses ready, when the
Service does not exist yet. Like kubeadm's add-on phase it is applied once, not reconciled: what a
user (or a test injecting a fault) deletes or changes afterwards stays so.
"""

from __future__ import annotations

from ..errors import ApiError
from .runner import KCM, Controller

NAMESPACE = "kube-system"
NAME = "kube-dns"
CLUSTER_IP = "10.96.0.10"
COREDNS_ADDRESSES = ("10.244.0.2", "10.244.0.3")
LABELS = {"k8s-app": "kube-dns", "kubernetes.io/name": "CoreDNS"}
PORTS = (("dns", 53, "UDP"), ("dns-tcp", 53, "TCP"), ("metrics", 9153, "TCP"))


class ClusterDns(Controller):
    name = "cluster-dns"
    manager = KCM

    def __init__(self, cluster, options) -> None:
        super().__init__(cluster, options)
        self.applied = False

    def reconcile(self) -> None:
        if self.applied:
            return
        self.applied = True
        if self.client.get("", "v1", "services", NAMESPACE, NAME) is not None:
            return
        try:
            self.client.create(
                "",
                "v1",
                "services",
                NAMESPACE,
                {
                    "metadata": {"name": NAME, "namespace": NAMESPACE, "labels": dict(LABELS)},
                    "spec": {
                        "selector": {"k8s-app": "kube-dns"},
                        "clusterIP": CLUSTER_IP,
                        "ports": [
                            {"name": n, "port": p, "protocol": proto, "targetPort": p}
                            for n, p, proto in PORTS
                        ],
                    },
                },
            )
            self.client.create(
                "",
                "v1",
                "endpoints",
                NAMESPACE,
                {
                    "metadata": {"name": NAME, "namespace": NAMESPACE, "labels": dict(LABELS)},
                    "subsets": [
                        {
                            "addresses": [{"ip": ip} for ip in COREDNS_ADDRESSES],
                            "ports": [
                                {"name": n, "port": p, "protocol": proto} for n, p, proto in PORTS
                            ],
                        }
                    ],
                },
            )
        except ApiError as error:
            if error.code != 409:
                raise
