"""Offline data: schemas, sources, validation, interactions, matrices, splits, synthetic shop.

Knows nothing of models or Redis.
"""
