"""A Kubernetes API stand-in for the gpuops.cluster sandbox.

Speaks enough of the Kubernetes API conventions (discovery, CRUD, patches, server-side apply,
selectors, pagination, watch, CRDs with schema validation) for the real `kubernetes` Python
client and the kubernetes.core Ansible modules to run against it unchanged.
"""

__version__ = "0.1.0"
