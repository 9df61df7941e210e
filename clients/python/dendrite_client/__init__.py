"""A typed client for dendrite: `Dendrite(url, key)`; errors in `dendrite_client.errors`; the
API's models (generated from its OpenAPI document) in `dendrite_client.models`."""

from dendrite_client.client import Dendrite
from dendrite_client.errors import DendriteError

__all__ = ["Dendrite", "DendriteError"]
