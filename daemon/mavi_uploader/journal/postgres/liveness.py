"""Which hosts are alive, as SQL: the fleet's rules for taking over a silent host's work.

Queries using these fragments pass `%(silent)s` (now - host_timeout, on the database clock)
and `%(me)s` (this host's id).
"""

from __future__ import annotations

# Hosts whose last heartbeat is older than host_timeout (this host never counts itself).
SILENT_HOSTS = "(SELECT host_id FROM hosts WHERE last_seen < %(silent)s AND host_id != %(me)s)"
# A silent host's work is taken only by a host whose own heartbeats have landed for a whole
# host_timeout: after an outage every host is equally stale, and none takes the others'
# uploads before they have had a host_timeout to say they are still alive.
# `%(beating)s`: this host's last heartbeat landed (a claim right after an outage, before
# the next beat has been tried, must not count on what the table said before it).
STEADY = (
    "(%(beating)s AND EXISTS (SELECT 1 FROM hosts AS me WHERE me.host_id = %(me)s"
    " AND me.connected_since <= %(silent)s))"
)
# A content claim held by a silent host no longer parks its copies on live hosts: a host
# gone for good must not keep them waiting for ever (if it comes back, its copy and ours may
# both be sent: one extra upload, never a file left behind).
HELD_BY_SILENT = f"(twin.host_id IN {SILENT_HOSTS} AND {STEADY})"
