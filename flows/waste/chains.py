"""Waste chains: each tonne that reaches its final step allocated back, through every hop, to its first manifests.

A manifest to a collector, store or pre-treatment plant (route `storage` or `transfer`) delivers a lot to an
intermediary; a manifest the intermediary sends on names the lots it draws from (`sources`), with tonnes or pro rata to
what each lot received. Every lot carries its composition: whole kilograms per original manifest. A draw takes from
what the lot still holds, in proportion, rounded by largest remainder, so that kilograms are neither made nor lost:
each original manifest's kilograms are, at any moment, held at an intermediary, on the road, or at a final step, and
never more than were received from it at the first hop. A forwarding that names no source draws from the
intermediary's lots of that category still held when it left, oldest first in proportion, and is flagged.
"""

from __future__ import annotations

import heapq
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from enum import StrEnum
from fractions import Fraction

from flows.kernel.errors import InvalidInput

INTERMEDIATE_ROUTES = frozenset({"storage", "transfer"})


class Placement(StrEnum):
    """Where an original manifest's kilograms are now."""

    final = "final"  # received at a final step (a utilisation route or disposal)
    held = "held"  # received by an intermediary and not yet sent on
    transit = "transit"  # dispatched, not yet received


@dataclass(frozen=True)
class Hop:
    """One manifest as the allocation sees it: who sent what to whom, how much arrived, and what it drew from."""

    id: int
    shipper_id: int
    receiver_id: int
    category_code: str
    route: str
    dispatched_kg: int
    received_kg: int | None  # None while not received (or when refused)
    dispatched_at: datetime
    # Lots drawn: (source id, kilograms or None for pro rata). Empty: original waste, or an unlinked forwarding.
    sources: tuple[tuple[int, int | None], ...] = ()

    @property
    def intermediate(self) -> bool:
        """Whether this manifest delivers a lot to an intermediary rather than to a final step."""
        return self.route in INTERMEDIATE_ROUTES


@dataclass(frozen=True)
class Share:
    """Kilograms of one original manifest found in one manifest, and where they are."""

    manifest_id: int
    origin_id: int
    placement: Placement
    kg: int


@dataclass
class Allocation:
    """The shares of a set of chains, the draws each forwarding made, and the forwardings that named no source."""

    shares: list[Share] = field(default_factory=list)
    draws: dict[int, dict[int, int]] = field(default_factory=dict)  # forwarding -> source -> kilograms drawn
    unlinked: set[int] = field(default_factory=set)

    def by_origin(self, placement: Placement | None = None) -> dict[int, int]:
        """Kilograms per original manifest (at one placement, or everywhere)."""
        out: dict[int, int] = {}
        for share in self.shares:
            if placement is None or share.placement is placement:
                out[share.origin_id] = out.get(share.origin_id, 0) + share.kg
        return out


def apportion(total: int, weights: Mapping[int, int]) -> dict[int, int]:
    """`total` split over keys in proportion to integer weights, by largest remainder (ties to the smaller key)."""
    whole = sum(weights.values())
    if total <= 0 or whole <= 0:
        return dict.fromkeys(weights, 0)
    exact = {key: Fraction(total * w, whole) for key, w in weights.items()}
    out = {key: int(value) for key, value in exact.items()}
    left = total - sum(out.values())
    for key in sorted(exact, key=lambda k: (-(exact[k] - out[k]), k))[:left]:
        out[key] += 1
    return out


def pro_rata_draws(hop: Hop, received: Mapping[int, int]) -> dict[int, int]:
    """The kilograms a forwarding draws from each source: as given, or its weight split over the sources' receipts."""
    given = {source: kg for source, kg in hop.sources if kg is not None}
    open_ = [source for source, kg in hop.sources if kg is None]
    draws = dict(given)
    if open_:
        rest = max(hop.dispatched_kg - sum(given.values()), 0)
        draws.update(apportion(rest, {source: received.get(source, 0) for source in open_}))
    return draws


def allocate(hops: Iterable[Hop]) -> Allocation:
    """Allocate every manifest of a closed set of chains to its original manifests (see the module's text)."""
    ordered = _in_order(list(hops))
    by_id = {hop.id: hop for hop in ordered}
    received = {hop.id: hop.received_kg or 0 for hop in ordered}
    held: dict[int, dict[int, int]] = {}  # lot (intermediate manifest) -> origin -> kilograms still held
    result = Allocation()
    for hop in ordered:
        composition = _composition(hop, by_id, received, held, result)
        arrived = hop.received_kg
        if arrived is None:
            _place(result, hop.id, composition, Placement.transit)
            continue
        # Weighed on arrival: a loss on the road leaves the chain; a gain makes no waste that came from nobody.
        carried = sum(composition.values())
        if arrived < carried:
            composition = apportion(arrived, composition)
        if hop.intermediate:
            held[hop.id] = dict(composition)
        else:
            _place(result, hop.id, composition, Placement.final)
    for lot, composition in held.items():
        _place(result, lot, composition, Placement.held)
    return result


def _in_order(hops: list[Hop]) -> list[Hop]:
    """By dispatch time, but every lot before the forwardings that name it (a clock may be wrong; the chain is not)."""
    by_id = {hop.id: hop for hop in hops}
    waiting = {hop.id: {s for s, _ in hop.sources if s in by_id} for hop in hops}
    users: dict[int, list[int]] = {}
    for hop in hops:
        for source in waiting[hop.id]:
            users.setdefault(source, []).append(hop.id)
    ready = [(hop.dispatched_at, hop.id) for hop in hops if not waiting[hop.id]]
    heapq.heapify(ready)
    out: list[Hop] = []
    while ready:
        _, ident = heapq.heappop(ready)
        out.append(by_id[ident])
        for user in users.get(ident, ()):
            waiting[user].discard(ident)
            if not waiting[user]:
                heapq.heappush(ready, (by_id[user].dispatched_at, user))
    if len(out) != len(hops):
        raise InvalidInput("waste.chain.cycle", field="sources")
    return out


def _composition(
    hop: Hop,
    by_id: Mapping[int, Hop],
    received: Mapping[int, int],
    held: dict[int, dict[int, int]],
    result: Allocation,
) -> dict[int, int]:
    if hop.sources:
        draws = pro_rata_draws(hop, received)
    else:
        # No source named: from the shipper's lots of this category still held when it left, if it holds any.
        lots = [
            lot
            for lot, left in held.items()
            if by_id[lot].receiver_id == hop.shipper_id
            and by_id[lot].category_code == hop.category_code
            and sum(left.values()) > 0
        ]
        if not lots:
            return {hop.id: hop.received_kg if hop.received_kg is not None else hop.dispatched_kg}
        result.unlinked.add(hop.id)
        available = {lot: sum(held[lot].values()) for lot in lots}
        wanted = min(hop.dispatched_kg, sum(available.values()))
        draws = apportion(wanted, available)
        own = hop.dispatched_kg - wanted
        composition = _draw(draws, held)
        result.draws[hop.id] = draws
        if own > 0:
            # More left than the lots held: the rest is the intermediary's own waste, and it is its origin.
            composition[hop.id] = composition.get(hop.id, 0) + own
        return composition
    # What the writer refused cannot be stored; a lot corrected downwards afterwards gives what it still holds.
    draws = {source: min(kg, sum(held.get(source, {}).values())) for source, kg in draws.items()}
    result.draws[hop.id] = draws
    return _draw(draws, held)


def _draw(draws: Mapping[int, int], held: dict[int, dict[int, int]]) -> dict[int, int]:
    composition: dict[int, int] = {}
    for source, kg in draws.items():
        taken = apportion(kg, held[source])
        for origin, part in taken.items():
            if part:
                held[source][origin] -= part
                composition[origin] = composition.get(origin, 0) + part
    return composition


def _place(result: Allocation, manifest_id: int, composition: Mapping[int, int], placement: Placement) -> None:
    result.shares.extend(
        Share(manifest_id, origin, placement, kg) for origin, kg in sorted(composition.items()) if kg > 0
    )


def check_sources(hop: Hop, sources: Sequence[Hop], drawn_before: Mapping[int, int]) -> None:
    """Refuse sources a forwarding cannot draw from, naming the source: not a lot of its shipper, another category,
    not received, or drawn beyond what it received."""
    for source in sources:
        if not source.intermediate:
            raise InvalidInput("waste.chain.source_not_a_lot", field="sources", source=source.id, route=source.route)
        if source.receiver_id != hop.shipper_id:
            raise InvalidInput("waste.chain.source_elsewhere", field="sources", source=source.id)
        if source.category_code != hop.category_code:
            raise InvalidInput(
                "waste.chain.source_category",
                field="sources",
                source=source.id,
                category=source.category_code,
                expected=hop.category_code,
            )
        if source.received_kg is None:
            raise InvalidInput("waste.chain.source_not_received", field="sources", source=source.id)
    received = {source.id: source.received_kg or 0 for source in sources}
    for source_id, kg in pro_rata_draws(hop, received).items():
        left = received[source_id] - drawn_before.get(source_id, 0)
        if kg > left:
            raise InvalidInput(
                "waste.chain.overdrawn", field="sources", manifest=hop.id, source=source_id, kg=kg, left=left
            )
