"""kissbot-monitor client for Python bots (protocol v1): standard library only, Python >= 3.9.

``from kissbot_monitor_client import MonitorClient``. The old module name still works for drop-in
use: ``import monitor_client`` is this package's ``client`` module. See docs/CLIENT_GUIDE.md.
"""

from .client import (
    HEARTBEAT_INTERVAL,
    MONITOR_SOCKET_PATH,
    PROTOCOL_SCHEMA,
    PROTOCOL_VERSION,
    SOCKET_TIMEOUT,
    HeartbeatTask,
    MonitorClient,
    features_to_dict,
    register_with_monitor,
    register_with_monitor_async,
    send_heartbeat,
    send_heartbeat_async,
    unregister_from_monitor,
    unregister_from_monitor_async,
)

__all__ = [
    "HEARTBEAT_INTERVAL",
    "MONITOR_SOCKET_PATH",
    "PROTOCOL_SCHEMA",
    "PROTOCOL_VERSION",
    "SOCKET_TIMEOUT",
    "HeartbeatTask",
    "MonitorClient",
    "features_to_dict",
    "register_with_monitor",
    "register_with_monitor_async",
    "send_heartbeat",
    "send_heartbeat_async",
    "unregister_from_monitor",
    "unregister_from_monitor_async",
]
