"""Allocation through waste chains, on the chains themselves: merges, splits, diamonds, unlinked forwardings."""

from __future__ import annotations

import random
from datetime import UTC, datetime, timedelta

import pytest

from flows.kernel.errors import InvalidInput
from flows.waste.chains import Hop, allocate, apportion, check_sources, pro_rata_draws
from models.enums import Placement

T0 = datetime(2025, 3, 1, tzinfo=UTC)
G1, G2, C, P, U, U2, B = 1, 2, 10, 11, 20, 21, 12


def hop(
    ident: int,
    shipper: int,
    receiver: int,
    tonnes: float,
    *,
    route: str = "cement_admixture",
    received: float | None = -1,
    sources: tuple[tuple[int, int | None], ...] = (),
    day: int = 0,
    category: str = "SW01",
) -> Hop:
    kg = round(tonnes * 1000)
    arrived = kg if received == -1 else (None if received is None else round(received * 1000))
    return Hop(ident, shipper, receiver, category, route, kg, arrived, T0 + timedelta(days=day, minutes=ident), sources)


def test_a_merge_credits_the_generators_not_the_collector() -> None:
    """G1 100 t and G2 50 t to a collector, which sends 120 t to a utiliser."""
    hops = [
        hop(1, G1, C, 100, route="transfer"),
        hop(2, G2, C, 50, route="transfer"),
        hop(3, C, U, 120, sources=((1, None), (2, None)), day=1),
    ]
    result = allocate(hops)
    assert result.by_origin(Placement.final) == {1: 80_000, 2: 40_000}
    assert result.by_origin(Placement.held) == {1: 20_000, 2: 10_000}
    assert 3 not in result.by_origin()  # the collector generated nothing
    assert result.unlinked == set()


def test_a_pre_treatment_hop_is_counted_once() -> None:
    hops = [hop(1, G1, P, 80, route="transfer"), hop(2, P, U, 80, sources=((1, None),), day=1)]
    assert allocate(hops).by_origin(Placement.final) == {1: 80_000}


def test_without_tonnes_the_weight_is_split_over_the_receipts() -> None:
    """60 t and 30 t received, 45 t forwarded: 30 t and 15 t."""
    forward = hop(3, C, U, 45, sources=((1, None), (2, None)), day=1)
    assert pro_rata_draws(forward, {1: 60_000, 2: 30_000}) == {1: 30_000, 2: 15_000}
    result = allocate([hop(1, G1, C, 60, route="storage"), hop(2, G2, C, 30, route="storage"), forward])
    assert result.draws[3] == {1: 30_000, 2: 15_000}


def test_given_tonnes_are_drawn_as_given_and_the_rest_pro_rata() -> None:
    forward = hop(3, C, U, 50, sources=((1, 10_000), (2, None)), day=1)
    assert pro_rata_draws(forward, {1: 60_000, 2: 30_000}) == {1: 10_000, 2: 40_000}


def test_a_diamond_reaches_the_end_once_per_tonne() -> None:
    """One origin splits over two intermediaries and both reach the same utiliser."""
    hops = [
        hop(1, G1, C, 100, route="transfer"),
        hop(2, C, P, 60, route="transfer", sources=((1, None),), day=1),
        hop(3, C, B, 40, route="storage", sources=((1, None),), day=1),
        hop(4, P, U, 60, sources=((2, None),), day=2),
        hop(5, B, U, 40, sources=((3, None),), day=2),
    ]
    result = allocate(hops)
    assert result.by_origin(Placement.final) == {1: 100_000}
    assert result.by_origin(Placement.held) == {}


def test_a_split_and_a_merge_keep_every_generator_within_what_it_sent() -> None:
    hops = [
        hop(1, G1, C, 100, route="transfer"),
        hop(2, G2, C, 50, route="transfer"),
        hop(3, C, U, 70, sources=((1, None), (2, None)), day=1),
        hop(4, C, U2, 80, sources=((1, None), (2, None)), day=2),
    ]
    result = allocate(hops)
    final = result.by_origin(Placement.final)
    assert final[1] <= 100_000 and final[2] <= 50_000
    assert sum(final.values()) == 150_000


def test_a_forwarding_without_sources_draws_from_what_the_intermediary_holds_and_is_flagged() -> None:
    hops = [hop(1, G1, C, 100, route="transfer"), hop(2, C, U, 70, day=1)]
    result = allocate(hops)
    assert result.unlinked == {2}
    assert result.by_origin(Placement.final) == {1: 70_000}
    assert result.by_origin(Placement.held) == {1: 30_000}


def test_a_forwarding_beyond_what_is_held_counts_the_rest_as_the_intermediarys_own() -> None:
    hops = [hop(1, G1, C, 100, route="transfer"), hop(2, C, U, 130, day=1)]
    assert allocate(hops).by_origin(Placement.final) == {1: 100_000, 2: 30_000}


def test_a_manifest_of_a_generator_that_holds_no_lot_is_its_own_origin() -> None:
    assert allocate([hop(1, G1, U, 12.5)]).by_origin(Placement.final) == {1: 12_500}


def test_a_loss_on_the_road_leaves_the_chain_and_a_gain_makes_no_waste() -> None:
    hops = [
        hop(1, G1, C, 100, route="transfer"),
        hop(2, C, U, 50, sources=((1, None),), day=1, received=45),
        hop(3, C, U2, 50, sources=((1, None),), day=2, received=55),
    ]
    assert allocate(hops).by_origin(Placement.final) == {1: 95_000}


def test_a_manifest_on_the_road_is_in_transit() -> None:
    hops = [hop(1, G1, C, 100, route="transfer"), hop(2, C, U, 100, sources=((1, None),), day=1, received=None)]
    result = allocate(hops)
    assert result.by_origin(Placement.transit) == {1: 100_000}
    assert result.by_origin(Placement.final) == {}


def test_a_source_cannot_be_drawn_beyond_what_it_received() -> None:
    lot = hop(1, G1, C, 60, route="storage")
    with pytest.raises(InvalidInput) as caught:
        check_sources(hop(2, C, U, 50, sources=((1, None),)), [lot], drawn_before={1: 20_000})
    assert caught.value.code == "waste.chain.overdrawn" and caught.value.params["source"] == 1
    check_sources(hop(2, C, U, 40, sources=((1, None),)), [lot], drawn_before={1: 20_000})


@pytest.mark.parametrize(
    ("source", "code"),
    [
        (hop(1, G1, U, 60), "waste.chain.source_not_a_lot"),
        (hop(1, G1, P, 60, route="storage"), "waste.chain.source_elsewhere"),
        (hop(1, G1, C, 60, route="storage", category="SW02"), "waste.chain.source_category"),
        (hop(1, G1, C, 60, route="storage", received=None), "waste.chain.source_not_received"),
    ],
)
def test_sources_a_forwarding_cannot_draw_from_are_refused(source: Hop, code: str) -> None:
    with pytest.raises(InvalidInput) as caught:
        check_sources(hop(2, C, U, 10, sources=((1, None),)), [source], drawn_before={})
    assert caught.value.code == code


def test_a_source_listed_after_its_forwarding_in_time_is_still_drawn_first() -> None:
    hops = [hop(1, G1, C, 100, route="transfer", day=5), hop(2, C, U, 100, sources=((1, None),), day=1)]
    assert allocate(hops).by_origin(Placement.final) == {1: 100_000}


def test_apportion_is_exact_and_largest_remainder() -> None:
    assert apportion(10, {1: 1, 2: 1, 3: 1}) == {1: 4, 2: 3, 3: 3}
    assert apportion(0, {1: 5}) == {1: 0}
    assert sum(apportion(1_000_001, {1: 3, 2: 7, 3: 11}).values()) == 1_000_001


@pytest.mark.parametrize("seed", range(25))
def test_random_chains_conserve_every_kilogram(seed: int) -> None:
    """Random merges, splits and second hops: each origin's kilograms are final, held or in transit, never more than
    it sent, and, with no loss on the road, exactly what it sent."""
    rng = random.Random(seed)
    hops: list[Hop] = []
    lots: list[Hop] = []
    ident = 0
    for day in range(40):
        ident += 1
        if not lots or rng.random() < 0.4:
            receiver = rng.choice([C, P, B])
            new = hop(ident, rng.choice([G1, G2]), receiver, rng.randint(1, 90), route="transfer", day=day)
            hops.append(new)
            lots.append(new)
            continue
        shipper = rng.choice([C, P, B])
        mine = [lot for lot in lots if lot.receiver_id == shipper]
        if not mine:
            continue
        picked = rng.sample(mine, k=min(len(mine), rng.randint(1, 3)))
        allocation = allocate(hops)
        left = {lot.id: kg for lot in picked if (kg := _held(allocation, lot.id)) > 0}
        if not left:
            continue
        weight = rng.randint(1, sum(left.values()))
        sources = tuple((lot_id, None) for lot_id in left)
        onward = rng.random() < 0.3
        receiver = rng.choice([C, P, B]) if onward else rng.choice([U, U2])
        draft = Hop(
            ident, shipper, receiver, "SW01", "transfer" if onward else "road_base", weight, weight, T0, sources
        )
        received = {lot_id: next(h.received_kg for h in hops if h.id == lot_id) or 0 for lot_id in left}
        draws = pro_rata_draws(draft, received)
        if any(draws[lot_id] > left[lot_id] for lot_id in draws):
            continue  # the writer would refuse it
        new = Hop(ident, shipper, receiver, "SW01", draft.route, weight, weight, T0 + timedelta(days=day), sources)
        hops.append(new)
        if onward:
            lots.append(new)
    result = allocate(hops)
    sent = {h.id: h.received_kg for h in hops if not h.sources}
    everywhere = result.by_origin()
    assert set(everywhere) <= set(sent)
    assert everywhere == {origin: kg for origin, kg in sent.items() if kg}


def _held(result: object, lot: int) -> int:
    from flows.waste.chains import Allocation

    assert isinstance(result, Allocation)
    return sum(s.kg for s in result.shares if s.manifest_id == lot and s.placement is Placement.held)
