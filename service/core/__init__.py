"""Infrastructure: settings, database, ORM, errors, logs, the artifact store, the queue and broker,
Prometheus metrics.
"""
