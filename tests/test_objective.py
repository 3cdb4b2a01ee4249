"""The ``ratio`` budget's objectives: params, MACs (whole model) and measured latency.

References are independent of the allocation: ``count_macs`` of the built
result, MACs written out by hand (``H*W*kh*kw*c*n``), a brute-force knapsack
and a fake latency table whose numbers the test computes itself.
"""

import itertools
import re

import keras
import numpy as np
import pytest

import keras_basis
import keras_basis.transform
from keras_basis.latency import LayerGeometry, pair_form, parse_form
from keras_basis.transform import choose_options


# ----------------------------------------------------------------- models
def _seed_weights(model, seed=0):
    """Kernels with decaying spectra (a trained network's shape), seeded."""
    rng = np.random.default_rng(seed)
    for layer in model.layers:
        if isinstance(layer, keras.layers.Conv2D):
            kh, kw, c, n = layer.kernel.shape
            rows = kh * kw * c
            u = rng.standard_normal((rows, min(rows, n)))
            v = rng.standard_normal((min(rows, n), n))
            decay = 0.8 ** np.arange(min(rows, n))
            kernel = (u * decay) @ v / np.sqrt(rows)
            layer.kernel.assign(kernel.reshape(kh, kw, c, n).astype("float32"))
    return model


def cnn():
    x = keras.Input((16, 16, 3))
    h = keras.layers.Conv2D(8, 3, padding="same", activation="relu", name="stem")(x)
    h = keras.layers.Conv2D(16, 3, padding="same", activation="relu", name="c1")(h)
    h = keras.layers.Conv2D(64, 3, padding="same", activation="relu", name="c2")(h)
    h = keras.layers.Conv2D(64, 3, strides=2, padding="same", activation="relu", name="c3")(h)
    h = keras.layers.Conv2D(96, 3, padding="same", name="c4")(h)
    h = keras.layers.GlobalAveragePooling2D()(h)
    return _seed_weights(keras.Model(x, keras.layers.Dense(10, name="fc")(h), name="cnn"))


def resnet():
    x = keras.Input((16, 16, 3))
    h = keras.layers.Conv2D(64, 3, padding="same", activation="relu", name="stem")(x)
    for i in range(2):
        y = keras.layers.Conv2D(64, 3, padding="same", activation="relu", name=f"b{i}a")(h)
        y = keras.layers.Conv2D(64, 3, padding="same", name=f"b{i}b")(y)
        h = keras.layers.Add(name=f"add{i}")([h, y])
    h = keras.layers.Conv2D(128, 3, strides=2, padding="same", name="down")(h)
    y = keras.layers.Conv2D(128, 3, padding="same", activation="relu", name="b2a")(h)
    y = keras.layers.Conv2D(128, 3, padding="same", name="b2b")(y)
    h = keras.layers.Add(name="add2")([h, y])
    h = keras.layers.GlobalAveragePooling2D()(h)
    return _seed_weights(keras.Model(x, keras.layers.Dense(10, name="fc")(h), name="res"))


def hand_macs(model):
    """Whole-model MACs written out: H*W*kh*kw*c*n per conv, c*n per Dense."""
    total = 0
    for layer in model.layers:
        if isinstance(layer, keras.layers.Conv2D):
            _, h, w, n = layer.output.shape
            kh, kw, c, _ = layer.kernel.shape
            total += h * w * kh * kw * c * n
        elif isinstance(layer, keras.layers.Dense):
            total += layer.kernel.shape[0] * layer.kernel.shape[1]
    return total


# ------------------------------------------------------------- MACs budget
@pytest.mark.parametrize("build,share", [(cnn, None), (resnet, "block")])
@pytest.mark.parametrize("ratio", [0.75, 0.5, 0.25])
def test_macs_budget_over_the_whole_model(build, share, ratio):
    model = build()
    small = keras_basis.compress(model, ratio=ratio, share=share, verbose=0)
    before, after = keras_basis.count_macs(model), keras_basis.count_macs(small)
    assert before == hand_macs(model)
    assert after <= ratio * before, (after / before, ratio)
    pairs = keras_basis.basis_pairs(small)
    assert pairs, "something is compressed"
    for pr in pairs:
        assert pr.m % 8 == 0 and pr.m <= keras_basis.maths.rank_bound(
            pr.p, pr.n, *pr.kernel_size, 1) * pr.s, (pr.name, pr.m)
        # the default's speed guard: every pair at most half of its dense MACs
        kh, kw = pr.kernel_size
        assert pr.m * (pr.c * kh * kw + pr.s * pr.n) <= 0.5 * pr.c * pr.n * kh * kw, pr.name
    if share == "block":
        shared = [pr for pr in pairs if pr.shared_with]
        assert shared and len({id(pr.basis_layer) for pr in shared}) < len(shared)


def test_default_objective_is_macs_and_spectra_agree():
    model = cnn()
    default = keras_basis.compress(model, ratio=0.5, verbose=0)
    macs = keras_basis.compress(model, ratio=0.5, objective="macs", multiple_of=8,
                                max_pair_macs=0.5, verbose=0)
    got = {pr.name: (pr.s, pr.m) for pr in keras_basis.basis_pairs(default)}
    assert got == {pr.name: (pr.s, pr.m) for pr in keras_basis.basis_pairs(macs)}
    planned = keras_basis.transform.spectra(model, ratio=0.5)
    assert {e["name"]: (e["s"], e["marks"][0][0]) for e in planned} == got
    planned = keras_basis.transform.spectra(model, ratio=0.5, objective="params")
    params = keras_basis.compress(model, ratio=0.5, objective="params", verbose=0)
    assert {e["name"]: (e["s"], e["marks"][0][0]) for e in planned} == {
        pr.name: (pr.s, pr.m) for pr in keras_basis.basis_pairs(params)}


def _cheapest_ratio(model, guard=0.5, align=8):
    """Smallest reachable whole-model MACs ratio, by hand: each conv at the cheaper of
    dense and its smallest admissible pair (s = 1 or Eq. 13, m = align)."""
    total, reach = hand_macs(model), hand_macs(model)
    for layer in model.layers:
        if not isinstance(layer, keras.layers.Conv2D):
            continue
        _, h, w, n = layer.output.shape
        kh, kw, c, _ = layer.kernel.shape
        dense = h * w * kh * kw * c * n
        best = dense
        for s in {1, keras_basis.maths.optimal_splits(c, n, kh, kw)}:
            rank = min(c // s * kh * kw, n * s)
            pair = h * w * (align * c * kh * kw + s * align * n)
            if align <= rank and pair <= guard * dense:
                best = min(best, pair)
        reach -= dense - best
    return reach / total


def test_infeasible_ratio_names_the_reachable_ratio():
    model = cnn()
    reach = _cheapest_ratio(model)
    assert 0.1 < reach < 0.25
    with pytest.raises(ValueError, match=r"objective='macs' cannot reach ratio=0.05.*smallest "
                       rf"reachable ratio of the MACs of the whole model is {reach:.4g} "):
        keras_basis.compress(model, ratio=0.05, verbose=0)
    # at the reachable ratio itself the budget is met
    small = keras_basis.compress(model, ratio=reach + 1e-6, verbose=0)
    assert keras_basis.count_macs(small) <= (reach + 1e-6) * hand_macs(model)


def test_layers_left_dense_say_why():
    model = cnn()
    small = keras_basis.compress(model, ratio=0.5, verbose=0)
    rep = keras_basis.report(small, print_fn=None)
    why = dict(rep.skipped)
    # stem: 3 -> 8 channels; its cheapest pair (s=1, m=8) has 16*16*(8*27 + 8*8) = 71,680
    # MACs against 16*16*27*8 = 55,296 dense
    assert why["stem"] == "stays dense: best pair s=1, m=8 costs 71.7 kMACs >= dense 55.3 kMACs"
    assert "stem: stays dense: best pair s=1, m=8 costs 71.7 kMACs" in str(rep)
    rep = keras_basis.report(small, reference=model, print_fn=None)
    assert rep.totals["model_macs"] == keras_basis.count_macs(small)
    assert rep.totals["reference_macs"] == hand_macs(model)
    ratio = rep.totals["model_macs"] / rep.totals["reference_macs"]
    assert f"Total model MACs: {rep.totals['model_macs']:,} (reference: " in str(rep)
    assert ratio <= 0.5 and f"{ratio:.1%})" in str(rep)
    # c1 (8 -> 16): its cheapest pair (s=1, m=8) has 16*16*8*(72 + 16) = 180,224 MACs,
    # 0.61x of 16*16*72*16 = 294,912: above the default guard
    assert why["c1"] == ("stays dense: best pair s=1, m=8 has 0.61x its MACs "
                         "(180 kMACs vs dense 295 kMACs), above max_pair_macs=0.5")
    # without the guard c1's pairs are admissible (the allocation decides), stem's are not
    loose = keras_basis.compress(model, ratio=0.5, max_pair_macs=1.0, verbose=0)
    why = dict(keras_basis.report(loose, print_fn=None).skipped)
    assert why["stem"].startswith("stays dense: best pair s=1, m=8 costs 71.7 kMACs >= dense")
    assert why["c1"].startswith("stays dense: the allocation keeps it whole (its closest "
                                "pair s=")


@pytest.mark.parametrize("align", [8, 16])
def test_m_multiple_of_and_rank_bound(align):
    model = resnet()
    small = keras_basis.compress(model, ratio=0.5, multiple_of=align, verbose=0)
    for pr in keras_basis.basis_pairs(small):
        assert pr.m % align == 0, (pr.name, pr.m)
        assert pr.m <= min(pr.p * pr.kernel_size[0] * pr.kernel_size[1], pr.n * pr.s)


# ------------------------------------------------------------ params budget
# Today's allocation (main at 8653a1f, before objectives existed) on cnn():
# compress(cnn(), ratio=r, allocation=a) chose these (s, m).
TODAY = {
    (0.5, "error"): {"stem": (3, 6), "c1": (2, 16), "c2": (2, 36), "c3": (4, 64),
                     "c4": (2, 36)},
    (0.3, "uniform"): {"stem": (3, 1), "c1": (2, 5), "c2": (2, 13), "c3": (4, 27),
                       "c4": (2, 34)},
}


@pytest.mark.parametrize("ratio,allocation", sorted(TODAY))
def test_params_objective_is_todays_allocation(ratio, allocation):
    small = keras_basis.compress(cnn(), ratio=ratio, allocation=allocation, objective="params",
                                 verbose=0)
    got = {pr.name: (pr.s, pr.m) for pr in keras_basis.basis_pairs(small)}
    assert got == TODAY[ratio, allocation]


# ---------------------------------------------------------------- knapsack
def _brute(costs, errors, budget):
    """Smallest summed error within the budget over every combination of options."""
    best = None
    for combo in itertools.product(*[range(len(c)) for c in costs]):
        cost = sum(c[i] for c, i in zip(costs, combo))
        err = sum(e[i] for e, i in zip(errors, combo))
        if cost <= budget + 1e-9 and (best is None or err < best - 1e-12):
            best = err
    return best


def _totals(costs, errors, picked):
    return (sum(c[i] for c, i in zip(costs, picked)),
            sum(e[i] for e, i in zip(errors, picked)))


def test_knapsack_optimal_on_convex_units():
    """Equal cost steps and non-increasing error decrements (a params-like problem):
    the hull greedy is exact at every budget."""
    costs = [[1, 2, 3, 4], [2, 3, 4], [1, 2, 3, 4]]
    errors = [[1.0, 0.5, 0.3, 0.2], [0.9, 0.4, 0.0], [0.7, 0.65, 0.1, 0.05]]
    for budget in range(4, 13):
        cost, err = _totals(costs, errors, choose_options(costs, errors, budget))
        assert cost <= budget
        assert err == pytest.approx(_brute(costs, errors, budget)), budget
    assert choose_options(costs, errors, 3) is None


def _lagrangian(costs, errors, picked):
    """Whether one multiplier lam >= 0 makes every picked option minimise
    error + lam * cost in its unit (then it is optimal for its own spend: Everett).
    The candidate multipliers are 0 and every slope between two options of a unit."""
    lams = {0.0}
    for c, e in zip(costs, errors):
        for i, j in itertools.combinations(range(len(c)), 2):
            if c[i] != c[j]:
                lams.add(abs((e[i] - e[j]) / (c[i] - c[j])))
    for lam in lams:
        if all(e[i] + lam * c[i] <= min(ee + lam * cc for ee, cc in zip(e, c)) + 1e-12
               for c, e, i in zip(costs, errors, picked)):
            return True
    return False


def test_knapsack_against_brute_force_on_random_units():
    """3 units of arbitrary options (dominated and non-convex ones too): never over
    budget; optimal at every Lagrangian point, and always within the largest error
    range of one unit from the optimum (the greedy's classic bound)."""
    rng = np.random.default_rng(1)
    exact = 0
    for _ in range(40):
        sizes = rng.integers(2, 6, 3)
        costs = [rng.integers(1, 20, k).tolist() for k in sizes]
        errors = [rng.random(k).round(3).tolist() for k in sizes]
        step = max(max(e) - min(e) for e in errors)
        lo, hi = sum(min(c) for c in costs), sum(max(c) for c in costs)
        for budget in range(lo, hi + 1):
            picked = choose_options(costs, errors, budget)
            cost, err = _totals(costs, errors, picked)
            assert cost <= budget
            best = _brute(costs, errors, budget)
            assert best - 1e-9 <= err <= best + step + 1e-9
            if _lagrangian(costs, errors, picked):
                assert err == pytest.approx(_brute(costs, errors, cost))
                exact += 1
        assert choose_options(costs, errors, lo - 1) is None
    assert exact > 100


def test_multiple_of_per_layer():
    """A callable or a dict sets each layer's alignment; the MACs budget still holds."""
    model = resnet()
    wide = keras_basis.compress(model, ratio=0.5, verbose=0,
                                multiple_of=lambda layer: 32 if layer.filters >= 128 else 8)
    pairs = keras_basis.basis_pairs(wide)
    assert any(pr.n >= 128 for pr in pairs) and any(pr.n < 128 for pr in pairs)
    for pr in pairs:
        assert pr.m % (32 if pr.n >= 128 else 8) == 0, (pr.name, pr.m)
    assert keras_basis.count_macs(wide) <= 0.5 * keras_basis.count_macs(model)
    by_name = keras_basis.compress(model, ratio=0.5, verbose=0, multiple_of={"b0a": 24})
    m = {pr.name: pr.m for pr in keras_basis.basis_pairs(by_name)}
    assert m.get("b0a", 24) % 24 == 0 and all(v % 8 == 0 for v in m.values())
    with pytest.raises(ValueError, match=r"`multiple_of`: \['nope'\] are not layers"):
        keras_basis.compress(model, ratio=0.5, verbose=0, multiple_of={"nope": 16})
    with pytest.raises(ValueError, match=r"`multiple_of` for layer 'stem'. Expected an int"):
        keras_basis.compress(model, ratio=0.5, verbose=0, multiple_of=lambda layer: 0)


# ---------------------------------------------------------- latency budget
class FakeTable:
    """A LatencyTable stand-in: ms from MACs, int8 pairs of layers with `slow` output
    channels 20x slower."""

    def __init__(self, slow=()):
        self.slow, self.store, self.measured = set(slow), {}, 0

    def ms(self, geometry, form, quantize, threads=1):
        base = geometry.macs(form) * 1e-6 * (1.0 if quantize == "float32" else 0.4)
        if form != "dense":
            base += 0.01  # a second op
            if quantize == "int8" and geometry.n in self.slow:
                base *= 20
        return base

    def get(self, geometry, form, quantize, threads):
        return self.store.get((geometry.key(), form, quantize, threads))

    @property
    def modes(self):  # as LatencyTable.modes
        return tuple(sorted({(q, t) for (_, f, q, t) in self.store if f == "dense"}))

    def measure(self, geometry, forms, quantize, threads):
        self.measured += len(forms)
        out = {f: self.ms(geometry, f, quantize, threads) for f in forms}
        for f, v in out.items():
            self.store[geometry.key(), f, quantize, threads] = v
        return out


def _conv_latency(model, small, table, quantize, threads=1):
    """Summed ms of the candidate convolutions of `small`, dense ones of `model`."""
    pairs = {pr.name: pr for pr in keras_basis.basis_pairs(small)}
    total = dense = 0.0
    for layer in model.layers:
        if isinstance(layer, keras.layers.Conv2D):
            geo = LayerGeometry.of_layer(layer, layer.input.shape)
            d = table.ms(geo, "dense", quantize, threads)
            pr = pairs.get(layer.name)
            if pr is not None:
                dilated = pr.s > 1 and pr.basis_layer.split_mode == "dilated"
                d_pair = table.ms(geo, pair_form(pr.s, pr.m, dilated=dilated), quantize, threads)
            total += d if pr is None else d_pair
            dense += d
    return total, dense


@pytest.mark.parametrize("ratio", [0.75, 0.5])
def test_latency_budget_holds_in_every_mode(ratio):
    model = cnn()
    table = FakeTable(slow={16})  # c1's pairs: faster in float32, slower in int8
    small = keras_basis.compress(model, ratio=ratio, objective="latency", latency_table=table,
                                 verbose=0)
    assert table.measured
    for quantize in ("float32", "int8"):
        total, dense = _conv_latency(model, small, table, quantize)
        assert total <= ratio * dense * (1 + 1e-9), (quantize, total / dense)
    names = {pr.name for pr in keras_basis.basis_pairs(small)}
    assert names and "c1" not in names
    why = dict(keras_basis.report(small, print_fn=None).skipped)
    assert why["c1"].startswith("stays dense: best pair s=")
    assert why["c1"].endswith("(int8, 1 thread)")
    assert " ms >= dense " in why["c1"]


class ThreadTable(FakeTable):
    """A second thread halves a dense layer's time and leaves a pair's as it is."""

    def ms(self, geometry, form, quantize, threads=1):
        base = super().ms(geometry, form, quantize)
        return base / 2 if threads > 1 and form == "dense" else base


def test_latency_budget_holds_at_two_threads_by_default():
    """An empty table budgets float32 and int8 at 1 and 2 threads; budgeting 1 thread
    only lets the pairs that gain nothing from a second thread break it there."""
    model = cnn()
    modes = [(q, t) for t in (1, 2) for q in ("float32", "int8")]
    table = ThreadTable()
    small = keras_basis.compress(model, ratio=0.75, objective="latency", latency_table=table,
                                 verbose=0)
    assert set(table.modes) == set(modes)
    for quantize, threads in modes:
        total, dense = _conv_latency(model, small, table, quantize, threads)
        assert total <= 0.75 * dense * (1 + 1e-9), (quantize, threads, total / dense)
    one = keras_basis.compress(model, ratio=0.75, objective="latency", latency_table=ThreadTable(),
                               latency_modes=[("float32", 1), ("int8", 1)], verbose=0)
    assert keras_basis.basis_pairs(one)
    total, dense = _conv_latency(model, one, table, "float32", 2)
    assert total > 0.75 * dense, total / dense
    # out of reach: the error gives each mode's smallest ratio
    with pytest.raises(ValueError, match=r"objective='latency' cannot reach ratio=0.05 .*every "
                       r"listed mode: 0\.\d+ \(float32, 1 thread\), .* \(int8, 2 threads\); "
                       r"`latency_modes=` names the modes"):
        keras_basis.compress(model, ratio=0.05, objective="latency", latency_table=table,
                             verbose=0)


def test_latency_modes_default_to_the_tables():
    """A table with dense timings in some modes (a phone's, 4 threads) budgets those
    modes only, and measures nothing here."""
    model = cnn()
    table = FakeTable()
    for layer in model.layers:
        if isinstance(layer, keras.layers.Conv2D):
            geo = LayerGeometry.of_layer(layer, layer.input.shape)
            table.measure(geo, ["dense"] + [pair_form(1, m) for m in (8, 16)], "int8", 4)
    table.measured = 0
    small = keras_basis.compress(model, ratio=0.5, objective="latency", latency_table=table,
                                 verbose=0)
    assert table.measured == 0 and table.modes == (("int8", 4),)
    total, dense = _conv_latency(model, small, table, "int8", 4)
    assert 0 < total <= 0.5 * dense * (1 + 1e-9), total / dense


def test_latency_table_is_reused():
    model = cnn()
    table = FakeTable()
    keras_basis.compress(model, ratio=0.5, objective="latency", latency_table=table, verbose=0)
    first = table.measured
    keras_basis.compress(model, ratio=0.5, objective="latency", latency_table=table, verbose=0)
    assert table.measured == first


def test_latency_table_from_elsewhere_is_not_mixed_with_local_timings():
    """Where the table holds a geometry (its dense entry), the forms it lacks are no
    candidates and nothing is measured here (a phone's table stays the phone's)."""
    model = cnn()
    table = FakeTable()
    for layer in model.layers:
        if isinstance(layer, keras.layers.Conv2D):
            geo = LayerGeometry.of_layer(layer, layer.input.shape)
            for quantize in ("float32", "int8"):
                table.measure(geo, ["dense", pair_form(1, 16)], quantize, 1)
    table.measured = 0
    small = keras_basis.compress(model, ratio=0.75, objective="latency", latency_table=table,
                                 verbose=0)
    assert table.measured == 0
    chosen = {(pr.s, pr.m) for pr in keras_basis.basis_pairs(small)}
    assert chosen == {(1, 16)}


class SplitFormTable(FakeTable):
    """s = 1 pairs 10x dearer (so the allocation uses s > 1); the dilated split form
    ``dilated_factor`` x its batch form."""

    def __init__(self, dilated_factor):
        super().__init__()
        self.dilated_factor = dilated_factor

    def ms(self, geometry, form, quantize, threads=1):
        base = super().ms(geometry, form, quantize)
        if form != "dense":
            f = parse_form(form)
            base *= (10.0 if f["s"] == 1 else 1.0) * (self.dilated_factor if f["dilated"]
                                                      else 1.0)
        return base


@pytest.mark.parametrize("factor,expected", [(0.5, "dilated"), (2.0, "batch")])
def test_latency_objective_picks_the_faster_split_form(factor, expected):
    """compress(objective="latency") costs both split forms of an s > 1 pair and builds
    the faster one (BasisConv2D(split_mode=...)); the budget holds for that form; the
    layer keeps the batch form where the dilated one is not exact (stride 2)."""
    model = resnet()
    table = SplitFormTable(factor)
    small = keras_basis.compress(model, ratio=0.6, objective="latency", latency_table=table,
                                 verbose=0)
    pairs = keras_basis.basis_pairs(small)
    split = [pr for pr in pairs if pr.s > 1]
    assert split, [(pr.name, pr.s, pr.m) for pr in pairs]
    for pr in split:
        exact = tuple(pr.basis_layer.strides) == (1, 1)
        assert pr.basis_layer.split_mode == (expected if exact else "batch"), pr.name
    assert any(tuple(pr.basis_layer.strides) == (1, 1) for pr in split)
    rows = {r["layer"]: r for r in keras_basis.report(small, print_fn=None).rows}
    assert {rows[pr.name]["split_mode"] for pr in split} >= {expected}
    for quantize in ("float32", "int8"):
        total, dense = _conv_latency(model, small, table, quantize)
        assert total <= 0.6 * dense * (1 + 1e-9), (quantize, total / dense)
    x = np.random.default_rng(0).standard_normal((2, 16, 16, 3)).astype("float32")
    y = np.asarray(small(x))
    for pr in split:  # the form changes the ops, not the function
        pr.basis_layer.split_mode = "batch"
    np.testing.assert_allclose(np.asarray(small(x)), y, rtol=1e-4, atol=1e-4)


# --------------------------------------------------------------- bad input
BAD = [
    (dict(objective="flops"), ValueError,
     r"argument `objective`. Expected None or one of \('params', 'macs', 'latency'\). "
     r"Received objective='flops'"),
    (dict(multiple_of=0), ValueError, r"argument `multiple_of`.*Received multiple_of=0"),
    (dict(multiple_of=8.0), TypeError, r"argument `multiple_of`.*Received multiple_of=8.0"),
    (dict(max_pair_macs=0), ValueError, r"argument `max_pair_macs`.*Received max_pair_macs=0"),
    (dict(max_pair_macs=1.5), ValueError, r"`max_pair_macs`.*Received max_pair_macs=1.5"),
    (dict(max_pair_macs="half"), TypeError, r"`max_pair_macs`.*Received max_pair_macs='half'"),
    (dict(latency_table=FakeTable()), ValueError,
     r"`latency_table`: it is read with objective='latency' only.*objective='macs'"),
    (dict(objective="latency", latency_table=3), TypeError,
     r"argument `latency_table`.*Received latency_table=3 of type int"),
    (dict(objective="latency", latency_table="/nonexistent/table.json"), ValueError,
     r"argument `latency_table`: could not load.*/nonexistent/table.json"),
    (dict(objective="latency", latency_table=FakeTable(), latency_modes=[("int4", 1)]),
     ValueError, r"argument `latency_modes`.*Received latency_modes=\[\('int4', 1\)\]"),
    (dict(objective="latency", latency_table=FakeTable(), latency_modes=[("int8", 0)]),
     ValueError, r"argument `latency_modes`"),
    (dict(objective="latency", latency_table=FakeTable(), latency_modes=()), ValueError,
     r"argument `latency_modes`"),
    (dict(objective="macs", latency_modes=[("int8", 1)]), ValueError,
     r"argument `latency_modes`: it is read with objective='latency' only"),
]


@pytest.mark.parametrize("kwargs,error,match", BAD)
def test_bad_objective_arguments(kwargs, error, match):
    with pytest.raises(error, match=match):
        keras_basis.compress(cnn(), ratio=0.5, verbose=0, **kwargs)


@pytest.mark.parametrize("name", ["objective", "multiple_of", "max_pair_macs", "latency_modes"])
def test_objective_arguments_need_ratio(name):
    value = {"objective": "macs", "multiple_of": 8, "max_pair_macs": 0.5,
             "latency_modes": [("int8", 1)]}[name]
    with pytest.raises(ValueError, match=rf"argument `{name}`: it applies to the `ratio` "
                       rf"budget.*Received {name}={re.escape(repr(value))} with num_basis=8"):
        keras_basis.compress(cnn(), num_basis=8, verbose=0, **{name: value})
