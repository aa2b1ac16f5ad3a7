"""Widens the local API server's Service IP range so that it holds 1,000 platforms (about 5,000 Services).

kube-apiserver's --service-cluster-ip-range (10.0.0.0/24, 254 addresses) fills at about 50 platforms.
Changing the flag would not widen a stack made before: the API server keeps the range its etcd first
recorded (the ServiceCIDR named `kubernetes`), whatever its flag says later. A second ServiceCIDR
extends the range at once, on a running API server, without a restart
(https://kubernetes.io/docs/tasks/network/extend-service-ip-ranges/); it may overlap the first.
"""

from pathlib import Path

from kubernetes import client
from kubernetes import config as kube_config
from kubernetes.client.exceptions import ApiException

from devstack import config
from devstack.procs import DevstackError

NAME = "devstack-wide"
# 65,534 addresses, beginning with the --service-cluster-ip-range (10.0.0.1 stays the API server's).
WIDE_RANGE = "10.0.0.0/16"


def ensure_wide(kubeconfig: Path = config.KUBECONFIG) -> bool:
    """Add the wide ServiceCIDR unless it is there; True if it was added."""
    api = client.NetworkingV1Api(kube_config.new_client_from_config(str(kubeconfig)))
    try:
        api.create_service_cidr({"metadata": {"name": NAME}, "spec": {"cidrs": [WIDE_RANGE]}})
    except ApiException as exc:
        if exc.status == 409:
            return False
        raise DevstackError(f"widening the Service IP range failed: {exc.status} {exc.reason}") from None
    return True
