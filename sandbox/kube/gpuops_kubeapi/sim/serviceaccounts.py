"""kube-controller-manager's serviceaccount, root-ca-cert-publisher and serviceaccount-token
controllers.

Every active namespace gets the ServiceAccount `default` (recreated if deleted) and, when the
server has a CA (TLS, the default), the ConfigMap `kube-root-ca.crt` with it under `ca.crt`.
A Secret of type `kubernetes.io/service-account-token` annotated with
`kubernetes.io/service-account.name` gets `token` (a legacy service account token the server
accepts), `ca.crt`, `namespace` and the `kubernetes.io/service-account.uid` annotation; one
whose ServiceAccount does not exist is deleted.
"""

from __future__ import annotations

import base64
from typing import Any

from ..auth import SA_NAME_ANNOTATION, SA_UID_ANNOTATION, SERVICE_ACCOUNT_TOKEN_TYPE
from ..store import ObjectKey
from .runner import KCM, WorkController

NAMESPACES = ("", "namespaces")
ACCOUNTS = ("", "serviceaccounts")
CONFIGMAPS = ("", "configmaps")
SECRETS = ("", "secrets")
ROOT_CA = "kube-root-ca.crt"
ROOT_CA_DESCRIPTION = (
    "Contains a CA bundle that can be used to verify the kube-apiserver when using internal "
    "endpoints such as the internal service IP or kubernetes.default.svc. No other usage is "
    "guaranteed across distributions of Kubernetes clusters."
)


def _b64(text: str) -> str:
    return base64.b64encode(text.encode()).decode()


class ServiceAccounts(WorkController):
    name = "serviceaccount"
    manager = KCM
    primary = NAMESPACES

    def __init__(self, cluster, options) -> None:
        super().__init__(cluster, options)
        self.pki = options.get("pki")

    def keys_for(self, type_key, key, event, before):
        if type_key == NAMESPACES:
            return (("", key[1]),)
        if type_key == ACCOUNTS and key[1] == "default" and event.type == "DELETED":
            return (("", key[0]),)
        if type_key == CONFIGMAPS and key[1] == ROOT_CA:
            return (("", key[0]),)
        return ()

    def reconcile(self) -> None:
        if self.changes is None:
            secrets = [r.key for r in self.client.records("", "v1", "secrets")]
            accounts = True
        else:
            secrets = list((self.changes.get(SECRETS) or {}).keys())
            accounts = bool(self.changes.get(ACCOUNTS))
            if accounts:  # a ServiceAccount came or went: its token Secrets follow
                secrets += [
                    r.key
                    for r in self.client.records("", "v1", "secrets")
                    if r.fields.get("type") == SERVICE_ACCOUNT_TOKEN_TYPE
                ]
        for key in sorted(set(secrets)):
            self._token_secret(key)
        super().reconcile()

    def sync(self, key: ObjectKey) -> None:
        namespace = key[1]
        record = self.client.record(NAMESPACES, ("", namespace))
        if record is None or record.fields.get("status.phase") == "Terminating":
            return
        if self.client.record(ACCOUNTS, (namespace, "default")) is None:
            self.client.create(
                "", "v1", "serviceaccounts", namespace, {"metadata": {"name": "default"}}
            )
        if self.pki is None:
            return
        ca = self.pki.ca_pem.decode()
        current = self.client.get("", "v1", "configmaps", namespace, ROOT_CA)
        if current is None:
            self.client.create(
                "",
                "v1",
                "configmaps",
                namespace,
                {
                    "metadata": {
                        "name": ROOT_CA,
                        "annotations": {"kubernetes.io/description": ROOT_CA_DESCRIPTION},
                    },
                    "data": {"ca.crt": ca},
                },
            )
        elif (current.get("data") or {}).get("ca.crt") != ca:
            self.client.patch("", "v1", "configmaps", namespace, ROOT_CA, {"data": {"ca.crt": ca}})

    def _token_secret(self, key: ObjectKey) -> None:
        record = self.client.record(SECRETS, key)
        if record is None or record.fields.get("type") != SERVICE_ACCOUNT_TOKEN_TYPE:
            return
        secret = record.decode()
        annotations = secret["metadata"].get("annotations") or {}
        name = annotations.get(SA_NAME_ANNOTATION)
        if not name or secret["metadata"].get("deletionTimestamp"):
            return
        account = self.client.get("", "v1", "serviceaccounts", key[0], name)
        wanted_uid = annotations.get(SA_UID_ANNOTATION)
        if account is None or (wanted_uid and wanted_uid != account["metadata"]["uid"]):
            self.client.delete("", "v1", "secrets", key[0], key[1])
            return
        data = secret.get("data") or {}
        if data.get("token") and annotations.get(SA_UID_ANNOTATION):
            return
        if self.pki is None:
            return
        uid = account["metadata"]["uid"]
        patch: dict[str, Any] = {
            "metadata": {"annotations": {SA_UID_ANNOTATION: uid}},
            "data": {
                "token": _b64(self.pki.legacy_token(key[0], name, uid, key[1])),
                "ca.crt": _b64(self.pki.ca_pem.decode()),
                "namespace": _b64(key[0]),
            },
        }
        self.client.patch("", "v1", "secrets", key[0], key[1], patch)
