from orchestrator.flow import OffsetTracker

P0, P1 = ("audio", 0), ("audio", 1)


def test_committable_offset_is_the_smallest_unfinished_one():
    tracker = OffsetTracker()
    tracker.assign([P0])
    for offset in (10, 11, 12, 13):
        assert tracker.track(P0, offset)
    tracker.finish(P0, 11)
    tracker.finish(P0, 12)
    assert tracker.ready_to_store() == {P0: 10}
    tracker.finish(P0, 10)
    assert tracker.ready_to_store() == {P0: 13}
    tracker.finish(P0, 13)
    assert tracker.ready_to_store() == {P0: 14}
    assert tracker.ready_to_store() == {}  # nothing moved since
    assert tracker.in_flight == 0


def test_messages_of_partitions_not_owned_are_refused():
    tracker = OffsetTracker()
    tracker.assign([P0])
    assert not tracker.track(P1, 5)
    assert tracker.in_flight == 0


def test_revoke_returns_final_offsets_and_never_stores_for_the_partition_again():
    tracker = OffsetTracker()
    tracker.assign([P0, P1])
    tracker.track(P0, 0)
    tracker.track(P0, 1)
    tracker.track(P1, 7)
    tracker.finish(P0, 0)
    assert tracker.revoke([P0]) == {P0: 1}
    tracker.finish(P0, 1)  # in-flight work finishing after the revoke
    assert P0 not in tracker.ready_to_store()
    assert tracker.owned() == [P1]
    assert tracker.in_flight == 1


def test_reassigned_partition_starts_clean():
    tracker = OffsetTracker()
    tracker.assign([P0])
    tracker.track(P0, 3)
    tracker.revoke([P0])
    tracker.assign([P0])
    tracker.track(P0, 20)
    tracker.finish(P0, 20)
    assert tracker.ready_to_store() == {P0: 21}
