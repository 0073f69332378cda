"""Alerting: rules evaluated on readings in the ingester, episodes and their history in SQL.

`model` (states, levels, the Alert JSON), `tables` (SQL), `store` (the episode upsert),
`rules` (the rule ladders from `rules.yaml`), `evaluate` (the vectorised evaluator), `texts`
(Bahasa Indonesia and English). Notification delivery reads the `alert_events` rows.
"""
