"""A one-time warm-up cache: memory grows once, then stays flat.

The first step builds a lookup table (about 2 MB) that every later step
reads.  Retained memory jumps during warm-up and never again, so the leak
slope — measured only over the iterations after warm-up — is near zero.
A before/after comparison of the whole run would have called this a leak.
"""

from __future__ import annotations

from pytest_automem import Automaton

_PRICE_TABLE: dict[str, float] = {}


def _price_table() -> dict[str, float]:
    if not _PRICE_TABLE:
        _PRICE_TABLE.update({f"sku-{n:06d}": (n % 500) / 7 for n in range(20_000)})
    return _PRICE_TABLE


def price_orders(automaton: Automaton, step: int) -> None:
    """One step: price a batch of orders with the cached table; keep nothing."""
    table = _price_table()
    orders = [{"sku": f"sku-{(step * 31 + i) % 20_000:06d}", "qty": i % 4 + 1} for i in range(200)]
    total = sum(table[order["sku"]] * order["qty"] for order in orders)
    if total < 0:
        raise AssertionError("prices are never negative")
