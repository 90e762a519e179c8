"""The SMTP layer's door to the store thread: user look-ups, local-domain checks and
durable delivery, each run as one job on ``StoreRunner`` so the event loop never
touches SQLite (DESIGN rule 8).

One ``Deliverer`` is kept per store object and only ever used on the store thread:
it is built lazily inside the first job, from the store that the runner hands in.
"""

from __future__ import annotations

from collections.abc import Sequence

from pushmail.delivery import Deliverer, RecipientResult
from pushmail.events.interfaces import Publisher
from pushmail.net.storethread import StoreRunner
from pushmail.store.interfaces import Store, User

__all__ = ["LocalDelivery"]


class LocalDelivery:
    """Async facade over ``Deliverer`` for the SMTP/LMTP handlers."""

    def __init__(
        self,
        runner: StoreRunner,
        publisher: Publisher,
        hostname: str,
        domains: Sequence[str] = (),
    ) -> None:
        self._runner = runner
        self._publisher = publisher
        self._static_domains = frozenset(d.lower() for d in (hostname, *domains))
        self._deliverer: Deliverer | None = None
        self._deliverer_store: Store | None = None

    def _get(self, store: Store) -> Deliverer:
        """Store thread only: the Deliverer for the runner's current store."""
        if self._deliverer is None or self._deliverer_store is not store:
            self._deliverer = Deliverer(store, self._publisher)
            self._deliverer_store = store
        return self._deliverer

    async def resolve(self, address: str) -> User | None:
        """The user that ``address`` (maybe ``user+tag@domain``) delivers to."""
        return await self._runner.run(lambda store: self._get(store).resolve(address))

    async def get_user(self, address: str) -> User | None:
        """The user whose login name is exactly ``address`` (case-insensitive)."""
        return await self._runner.run(lambda store: store.get_user(address.lower()))

    async def is_local_domain(self, domain: str) -> bool:
        """True for the configured hostname and domains, and any domain in which a
        user exists. Only asked for recipients that did not resolve, so the user scan
        is paid for unknown addresses, not for ordinary deliveries."""
        domain = domain.lower()
        if domain in self._static_domains:
            return True

        def scan(store: Store) -> bool:
            return any(u.address.rpartition("@")[2] == domain for u in store.list_users())

        return await self._runner.run(scan)

    async def deliver(self, recipients: Sequence[str], raw: bytes) -> list[RecipientResult]:
        """Store ``raw`` for every recipient; durable when this returns."""
        rcpts = tuple(recipients)
        return await self._runner.run(lambda store: self._get(store).deliver(rcpts, raw))
