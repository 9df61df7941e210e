"""How a model gets trained: the Celery app, its task, and the training pipeline."""
