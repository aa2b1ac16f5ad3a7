"""The audit log's action codes in words, in one place for every page that shows the log."""

from django import template

register = template.Library()

ACTION_WORDS = {
    "access.add": "Added to group",
    "access.remove": "Removed from group",
    "access.add-unknown": "Add sent, outcome unknown (Keycloak did not answer)",
    "access.remove-unknown": "Removal sent, outcome unknown (Keycloak did not answer)",
    "access.repair-requested": "Repair of access requested",
    "access.repair": "Access repaired",
    "access.repair-failed": "Repair of access failed",
    "access.auto-repair": "Access lost in Keycloak, re-created",
    "access.auto-repair-failed": "Access lost in Keycloak, re-creating it failed",
    "cluster.register": "Cluster registered",
    "cluster.change": "Cluster changed",
    "cluster.remove": "Cluster removed",
    "platform.launch": "Launch requested",
    "platform.retry": "Retry requested",
    "platform.change": "Change requested",
    "platform.rollback": "Rollback requested",
    "platform.delete": "Deletion requested",
    "platform.expire": "Expired, deletion requested",
}


@register.filter
def action_words(code: str) -> str:
    """What the action code means, for a person; an unknown code as it is, so it still reads."""
    return ACTION_WORDS.get(code, code)
