"""Cache plans: Belady is optimal, beats every other policy, every plan replays exactly, and a
saved policy state resumes planning exactly where it stopped."""
from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings, strategies as st

from tiered.plan import (POLICIES, AccessTrace, BeladyPolicy, CacheState, LRUPolicy, NoCache,
                         Plan, PolicyState, SievePolicy, access_counts, make_policy, replay)
from tiered.plan.exact import exact_misses, exact_two_level_cost, two_level_cost


def random_trace(rng, n, batches, max_batch, zipf=None) -> AccessTrace:
    """Batches of distinct ids, uniform or power-law (weight of node i ~ (i+1)^-zipf)."""
    p = None
    if zipf is not None:
        w = (np.arange(n) + 1.0) ** -zipf
        p = w / w.sum()
    out = []
    for _ in range(batches):
        k = int(rng.integers(1, max_batch + 1))
        out.append(rng.choice(n, size=min(k, n), replace=False, p=p))
    return AccessTrace.from_batches(out, n)


@pytest.mark.parametrize("seed", range(12))
def test_belady_equals_exhaustive_optimum(seed):
    rng = np.random.default_rng(seed)
    n = int(rng.integers(4, 9))
    trace = random_trace(rng, n, int(rng.integers(3, 9)), 4, zipf=None if seed % 2 else 1.0)
    for C in range(0, 5):
        best = exact_misses(trace, C)
        assert BeladyPolicy([C], n).plan(trace).backing_loads == best, (seed, C)


@pytest.mark.parametrize("seed", range(6))
def test_levels_match_single_level_optima(seed):
    """Backing loads = MIN(sum of capacities); reads outside DRAM = MIN(DRAM capacity)."""
    rng = np.random.default_rng(100 + seed)
    n = 40
    traces = [random_trace(rng, n, 12, 10, zipf=0.8) for _ in range(3)]
    caps = [int(rng.integers(1, 8)), int(rng.integers(1, 8)), int(rng.integers(0, 8))]
    multi = BeladyPolicy(caps, n)
    one_dram, one_all = BeladyPolicy([caps[0]], n), BeladyPolicy([sum(caps)], n)
    for t in traces:
        p = multi.plan(t)
        replay(p)
        assert p.backing_loads == one_all.plan(t).backing_loads
        assert p.loads_per_level().sum() == one_dram.plan(t).backing_loads


@pytest.mark.parametrize("seed", range(8))
def test_two_level_plan_is_read_optimal(seed):
    """Without a PMem write cost the layered plan costs exactly the minimum; with one it
    is never below it (docs/inspector.md reports the measured gap)."""
    rng = np.random.default_rng(200 + seed)
    n = 5
    trace = random_trace(rng, n, 7, 3, zipf=0.7)
    c0, c1 = 1, 2
    plan = BeladyPolicy([c0, c1], n).plan(trace)
    replay(plan)
    assert two_level_cost(plan, 1.0, 10.0, 0.0) == exact_two_level_cost(trace, c0, c1, 1.0, 10.0, 0.0)
    assert two_level_cost(plan, 1.0, 10.0, 3.0) >= exact_two_level_cost(trace, c0, c1, 1.0, 10.0, 3.0)


@settings(max_examples=60, deadline=None)
@given(seed=st.integers(0, 2**31), n=st.integers(2, 300), batches=st.integers(1, 30),
       max_batch=st.integers(1, 60), cap_frac=st.floats(0.0, 1.2),
       zipf=st.one_of(st.none(), st.floats(0.3, 1.5)))
def test_belady_loads_fewest(seed, n, batches, max_batch, cap_frac, zipf):
    rng = np.random.default_rng(seed)
    trace = random_trace(rng, n, batches, max_batch, zipf)
    C = int(cap_frac * n)
    counts = access_counts(trace)
    degree_like = rng.random(n)
    belady = BeladyPolicy([C], n).plan(trace).backing_loads
    for name in POLICIES[1:]:
        for score in (counts, degree_like):
            other = make_policy(name, [C], n, score=score).plan(trace).backing_loads
            assert belady <= other, (name, belady, other)


@settings(max_examples=40, deadline=None)
@given(seed=st.integers(0, 2**31), n=st.integers(2, 200), caps=st.lists(st.integers(0, 40),
       min_size=1, max_size=3), zipf=st.one_of(st.none(), st.floats(0.3, 1.5)))
def test_every_plan_replays(seed, n, caps, zipf):
    """Across superbatches (state carried over), each batch assembles exactly its rows."""
    rng = np.random.default_rng(seed)
    traces = [random_trace(rng, n, int(rng.integers(1, 12)), 40, zipf) for _ in range(3)]
    policies = [BeladyPolicy(caps, n), NoCache(n)] + \
        [make_policy(name, caps[:1], n, score=rng.random(n)) for name in ("lru", "sieve", "static")]
    for pol in policies:
        prev = None
        for t in traces:
            plan = pol.plan(t)
            replay(plan)
            if prev is not None:
                for f in ("node", "level", "slot"):
                    assert np.array_equal(getattr(plan.state_in, f), getattr(prev.state_out, f))
            prev = plan
            check_format(plan)


def check_format(plan: Plan) -> None:
    K = plan.num_levels
    for b in range(plan.num_batches):
        bp = plan.batch(b)
        key = bp.load_level.astype(np.int64) << 32 | bp.load_ids
        assert np.all(np.diff(key) > 0), "loads sorted by (level, id), distinct"
        hits = bp.row_loc >= 0
        assert np.all(bp.row_loc[hits] < plan.capacities[0])
        loads = np.sort(-bp.row_loc[~hits] - 1)
        assert np.array_equal(loads, np.arange(len(bp.load_ids))), "each load feeds one row"
        assert np.array_equal(np.sort(bp.row_ids[~hits]), np.sort(bp.load_ids))
        assert np.all((bp.load_level >= 1) & (bp.load_level <= K))
        assert np.all((bp.load_slot >= 0) == (bp.load_level < K))
        assert np.all(bp.move_src[bp.move_src_level < 0] < len(bp.row_ids))


def test_save_load_replays_the_same(tmp_path):
    rng = np.random.default_rng(7)
    pol = BeladyPolicy([10, 20], 100)
    pol.plan(random_trace(rng, 100, 5, 30, 1.0))
    plan = pol.plan(random_trace(rng, 100, 8, 30, 1.0))
    plan.save(tmp_path / "plan.npz")
    back = Plan.load(tmp_path / "plan.npz")
    replay(back)
    assert back.policy == "belady"
    for name, value in vars(plan).items():
        if isinstance(value, np.ndarray):
            assert np.array_equal(value, getattr(back, name)) and value.dtype == getattr(back, name).dtype
    assert np.array_equal(back.state_in.node, plan.state_in.node)


def test_same_trace_same_plan():
    rng = np.random.default_rng(3)
    traces = [random_trace(rng, 500, 10, 80, 0.9) for _ in range(2)]
    a, b = BeladyPolicy([50, 50], 500), BeladyPolicy([50, 50], 500)
    for t in traces:
        pa, pb = a.plan(t), b.plan(t)
        for name, value in vars(pa).items():
            if isinstance(value, np.ndarray):
                assert np.array_equal(value, getattr(pb, name))


def test_sorted_runs_are_merged():
    """A sampled batch is a few sorted runs; its loads still come out sorted."""
    rng = np.random.default_rng(5)
    runs = [np.sort(rng.choice(10_000, 300, replace=False)) for _ in range(4)]
    ids = np.unique(np.concatenate(runs), return_index=True)[1]
    batch = np.concatenate(runs)[np.sort(ids)]
    plan = BeladyPolicy([10], 10_000).plan(AccessTrace.from_batches([batch, batch[::2]], 10_000))
    replay(plan)
    check_format(plan)


def test_errors():
    with pytest.raises(ValueError, match="repeats node 3"):
        BeladyPolicy([2], 10).plan(AccessTrace.from_batches([[1, 3, 3]], 10))
    with pytest.raises(IndexError, match="out of range"):
        BeladyPolicy([2], 10).plan(AccessTrace.from_batches([[1, 12]], 10))
    with pytest.raises(ValueError, match="trace over 20 nodes"):
        BeladyPolicy([2], 10).plan(AccessTrace.from_batches([[1]], 20))
    with pytest.raises(ValueError, match="needs a score"):
        make_policy("static", [2], 10)
    with pytest.raises(ValueError, match="1 cache level"):
        make_policy("lru", [2, 3], 10)
    with pytest.raises(ValueError, match="unknown cache policy"):
        make_policy("fifo", [2], 10)


# ---- policy state: checkpoint and resume --------------------------------------------------
RESUMABLE = [("belady", [30]), ("belady", [10, 15, 20]), ("lru", [30]), ("sieve", [30]),
             ("static", [30]), ("none", [0])]


def _policy(name, caps, n):
    return make_policy(name, caps, n, score=np.arange(n, 0, -1, dtype=np.float64))


def assert_same_batches(a: Plan, a0: int, b: Plan, b0: int, count: int) -> None:
    """Batches a0.. of plan a equal batches b0.. of plan b, every array of every batch."""
    for i in range(count):
        x, y = a.batch(a0 + i), b.batch(b0 + i)
        for f, v in vars(x).items():
            assert np.array_equal(v, getattr(y, f)), (a0 + i, f)


def assert_same_state(a, b) -> None:
    for f in ("node", "level", "slot"):
        assert np.array_equal(getattr(a, f), getattr(b, f)), f


@pytest.mark.parametrize("name,caps", RESUMABLE)
def test_restore_mid_superbatch_plans_as_uninterrupted(name, caps, tmp_path):
    """state_at(j) saved to disk, restored into a fresh policy: the rest of the superbatch and
    the next one plan exactly as without interruption (every array, slots included)."""
    n = 200
    rng = np.random.default_rng(21)
    traces = [random_trace(rng, n, 10, 40, 0.9) for _ in range(3)]
    ref = _policy(name, caps, n)
    ref.plan(traces[0])
    start = ref.state()
    whole = ref.plan(traces[1])
    after = ref.plan(traces[2])
    for j in (0, 1, 4, 9, 10):
        st = ref.state_at(start, traces[1], j)
        np.savez(tmp_path / "state.npz", **st.to_dict())
        with np.load(tmp_path / "state.npz") as z:
            st = PolicyState.from_dict(z)
        pol = _policy(name, caps, n)
        pol.restore(st)
        rest = pol.plan(traces[1].tail(j))
        replay(rest)
        assert_same_batches(whole, j, rest, 0, 10 - j)
        assert_same_state(rest.state_out, whole.state_out)
        assert_same_batches(after, 0, pol.plan(traces[2]), 0, 10)
    assert_same_state(ref.state_at(start, traces[1], 10).cache, whole.state_out)


def test_mid_superbatch_state_differs_from_its_start():
    """The mid-superbatch state is really needed: resuming from the superbatch's start state
    gives another plan for the same batches."""
    n = 200
    rng = np.random.default_rng(22)
    trace = random_trace(rng, n, 10, 40, 0.9)
    for name, caps in RESUMABLE[:4]:
        ref = _policy(name, caps, n)
        start = ref.state()
        whole = ref.plan(trace)
        other = _policy(name, caps, n)
        other.restore(start)
        late = other.plan(trace.tail(5))
        rest = np.concatenate([whole.batch(b).load_ids for b in range(5, 10)])
        assert not np.array_equal(late.load_ids, rest), name


@settings(max_examples=30, deadline=None)
@given(seed=st.integers(0, 2**31), caps=st.lists(st.integers(0, 12), min_size=2, max_size=3),
       j=st.integers(0, 8))
def test_restored_state_plans_validly_in_any_window(seed, caps, j):
    """A mid-superbatch state restored before other batches (another window) still plans a
    sound cache: the rows it carries are re-ordered per next-use bucket, deepest level first."""
    rng = np.random.default_rng(seed)
    n = 60
    a, b = random_trace(rng, n, 8, 15, 0.8), random_trace(rng, n, 6, 15, 0.8)
    ref = BeladyPolicy(caps, n)
    start = ref.state()
    ref.plan(a)
    pol = BeladyPolicy(caps, n)
    pol.restore(ref.state_at(start, a, j))
    replay(pol.plan(b))


def test_restore_rejects_foreign_states():
    n = 50
    lru = LRUPolicy(5, n)
    lru.plan(AccessTrace.from_batches([[1, 2, 3]], n))
    st = lru.state()
    with pytest.raises(ValueError, match="cannot restore a sieve"):
        SievePolicy(5, n).restore(st)
    with pytest.raises(ValueError, match="cannot restore a lru cache \\(6,\\)"):
        LRUPolicy(6, n).restore(st)
    bad = PolicyState("lru", (5,), n, CacheState(np.array([1, 2], np.int32), np.zeros(2, np.int8),
                                                  np.array([0, 3], np.int32)))
    with pytest.raises(ValueError, match="slots must be 0..1"):
        LRUPolicy(5, n).restore(bad)
    dup = PolicyState("belady", (5,), n, CacheState(np.array([1, 1], np.int32), np.zeros(2, np.int8),
                                                     np.array([0, 1], np.int32)))
    with pytest.raises(ValueError, match="repeats"):
        BeladyPolicy(5, n).restore(dup)
    with pytest.raises(ValueError, match="outside the pinned set"):
        make_policy("static", 2, n, score=np.arange(n)).restore(
            PolicyState("static", (2,), n, CacheState(np.array([0], np.int32), np.zeros(1, np.int8),
                                                      np.array([0], np.int32))))
    wrong_free = BeladyPolicy(5, n)
    wrong_free.restore(PolicyState("belady", (5,), n, CacheState.empty(),
                                   free=np.array([0, 1], np.int32), free_ptr=np.array([0, 2])))
    with pytest.raises(RuntimeError, match="free slots"):
        wrong_free.plan(AccessTrace.from_batches([[1, 2]], n))
