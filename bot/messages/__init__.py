"""Every Slack message Firebreak posts or answers, one module per subject.

`blocks` holds the Block Kit helpers every card is built from; `incident`, `rca`, `feedback`,
`escalation`, `remediation` and `silences` word what each subject says; `commands` answers the
slash command; `replies` answers a person who acted; `notices` maps an incident notice to its
message. The terminal rendering of any of them is `bot/console.py`.
"""
