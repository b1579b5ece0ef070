"""The old module name, for drop-in use: ``import monitor_client`` (or ``from monitor_client import
MonitorClient``) gives kissbot_monitor_client.client itself, private names and module constants
included, so code written against the old ``core/monitor_client.py`` runs unchanged."""

import sys

from kissbot_monitor_client import client as _client

sys.modules[__name__] = _client
