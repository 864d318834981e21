# -*- coding: utf-8 -*-
# Copyright: contributors to gpuops.cluster
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Kubernetes access for karpenter_pool: kubernetes.core's client, server-side apply.

The API client (kubeconfig, context, tokens, certificates, proxies) is kubernetes.core's
``get_api_client``; objects are applied with server-side apply under one field manager,
as a server dry-run in check mode, and compared before/after to report ``changed`` and a diff.
"""

from __future__ import absolute_import, annotations, division, print_function

__metaclass__ = type

import copy

from ansible_collections.gpuops.cluster.plugins.module_utils.karpenter._common import POOL_LABEL

try:
    from ansible_collections.kubernetes.core.plugins.module_utils.k8s.client import get_api_client

    HAS_K8S = True
except ImportError:  # pragma: no cover - depends on the host
    HAS_K8S = False

try:
    from kubernetes.dynamic.exceptions import ForbiddenError, NotFoundError, ResourceNotFoundError
except ImportError:  # pragma: no cover - depends on the host

    class NotFoundError(Exception):
        pass

    class ForbiddenError(Exception):
        pass

    class ResourceNotFoundError(Exception):
        pass


VOLATILE_METADATA = ("managedFields", "resourceVersion", "generation", "creationTimestamp", "uid", "selfLink")


def comparable(obj):
    """``obj`` without what the server changes on every write (and without status)."""
    if obj is None:
        return None
    result = copy.deepcopy(obj)
    result.pop("status", None)
    meta = result.get("metadata") or {}
    for key in VOLATILE_METADATA:
        meta.pop(key, None)
    return result


class KubeAccess(object):
    """Reads, applies and deletes the pool's cluster-scoped objects."""

    def __init__(self, auth_params, field_manager, force_conflicts, check_mode):
        if not HAS_K8S:
            raise ImportError("kubernetes.core and the kubernetes Python client are required")
        self.client = get_api_client(**{k: v for k, v in auth_params.items() if v is not None}).client
        self.field_manager = field_manager
        self.force_conflicts = force_conflicts
        self.check_mode = check_mode

    def _resource(self, api_version, kind):
        return self.client.resources.get(api_version=api_version, kind=kind)

    def crd(self, name):
        """The CustomResourceDefinition ``name`` as a dict, None when absent; "forbidden" when
        the credentials may not read CRDs (gating then falls back to the apply's own errors)."""
        try:
            crds = self._resource("apiextensions.k8s.io/v1", "CustomResourceDefinition")
            return crds.get(name=name).to_dict()
        except NotFoundError:
            return None
        except ForbiddenError:
            return "forbidden"

    def get(self, api_version, kind, name):
        try:
            return self._resource(api_version, kind).get(name=name).to_dict()
        except (NotFoundError, ResourceNotFoundError):
            return None

    def list_labelled(self, api_version, kind, pool):
        try:
            items = self._resource(api_version, kind).get(label_selector="%s=%s" % (POOL_LABEL, pool)).to_dict()
        except (NotFoundError, ResourceNotFoundError):
            return []
        return items.get("items") or []

    def apply(self, obj):
        """(before, after) of a server-side apply of ``obj`` (dry-run in check mode)."""
        resource = self._resource(obj["apiVersion"], obj["kind"])
        before = self.get(obj["apiVersion"], obj["kind"], obj["metadata"]["name"])
        params = dict(field_manager=self.field_manager, force_conflicts=self.force_conflicts)
        if self.check_mode:
            params["dry_run"] = "All"
        after = self.client.server_side_apply(resource, body=obj, name=obj["metadata"]["name"], **params).to_dict()
        return before, after

    def delete(self, obj):
        """(before, None) after deleting ``obj`` (dry-run in check mode); (None, None) if absent."""
        api_version, kind, name = obj["apiVersion"], obj["kind"], obj["metadata"]["name"]
        before = self.get(api_version, kind, name)
        if before is None:
            return None, None
        params = {"dry_run": "All"} if self.check_mode else {}
        try:
            self._resource(api_version, kind).delete(name=name, **params)
        except NotFoundError:
            return None, None
        return before, None
