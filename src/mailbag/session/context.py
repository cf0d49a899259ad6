"""What every session gets from the server: config, store, auth, delivery."""

from __future__ import annotations

from dataclasses import dataclass

from ..auth.service import Authenticator
from ..config import Config
from ..store.interface import Store
from .delivery import Delivery


@dataclass(slots=True)
class ServerContext:
    config: Config
    store: Store
    auth: Authenticator
    delivery: Delivery
