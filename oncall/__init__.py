"""On-call schedules (rotations, overrides, iCal) and channel routing.

Imports only tools/ and store/ of ours: the composition root hands in the Slack e-mail lookup,
the metrics registry and the config, and wires the answers into escalation and the bot."""
