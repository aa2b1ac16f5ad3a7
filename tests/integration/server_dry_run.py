"""Server-side dry runs of rendered chart objects: what the real API server would say to each."""

from kubernetes import client, dynamic


def dry_run(apis: dynamic.DynamicClient, document: dict, namespace: str) -> str:
    """The API server's objection to the object ("" when it accepts it), applied server-side as a dry run."""
    resource = apis.resources.get(api_version=document["apiVersion"], kind=document["kind"])
    try:
        resource.server_side_apply(
            body=document,
            name=document["metadata"]["name"],
            namespace=namespace if resource.namespaced else None,
            field_manager="binderadmin-test",
            force_conflicts=True,
            dry_run="All",
        )
    except client.ApiException as exc:
        return f"{document['kind']} {document['metadata']['name']}: {exc.status} {exc.body[:300]}"
    return ""
