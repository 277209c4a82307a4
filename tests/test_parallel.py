"""Sweeps and data-parallel training (issue 8): in-process, on threads, and on a 2-worker Dask
LocalCluster (processes, no dashboard), including a worker killed mid-sweep."""

import multiprocessing
import os
from concurrent.futures import Future, ThreadPoolExecutor

import numpy as np
import pytest

import fastrnn
from fastrnn import datasets
from fastrnn.parallel import WorkerError
from fastrnn.sweep import format_table, grid_points


def data(N=48, T=8, seed=0):
    (X, Y), _ = datasets.binary_addition(N, 4, seed=seed)
    return X[:, :T], Y[:, :T]


def make_model(hidden=8, seed=0, cell="rnn-sigmoid", fail=False, die=False):
    """Module level, so that worker processes can unpickle it."""
    if fail:
        raise RuntimeError("this grid point is broken on purpose")
    if die and multiprocessing.current_process().name != "MainProcess":
        os._exit(1)  # the worker process dies mid-sweep
    from fastrnn.registry import BY_CELL_NAME

    core = BY_CELL_NAME[cell].make(2, hidden, seed=seed)
    return fastrnn.Model(core, 1, loss="sigmoid_cross_entropy", seed=seed)


FIT = {"epochs": 2, "batch_size": 16, "optimizer": "adam"}


def test_grid_points():
    assert grid_points({"a": [1, 2], "b": ["x", "y"]}) == [{"a": 1, "b": "x"}, {"a": 1, "b": "y"},
                                                          {"a": 2, "b": "x"}, {"a": 2, "b": "y"}]
    assert grid_points([{"a": 1}, {"b": 2}]) == [{"a": 1}, {"b": 2}]
    with pytest.raises(TypeError, match="grid: expected a dict of lists or a list of dicts"):
        grid_points([1, 2])


def test_serial_sweep_equals_each_point_alone_and_reports_failures():
    X, Y = data()
    grid = [{"hidden": 4, "seed": 1}, {"fail": True}, {"hidden": 6, "seed": 2, "epochs": 3}]
    results = fastrnn.sweep(make_model, grid, X, Y, **FIT)
    assert [r["status"] for r in results] == ["ok", "failed", "ok"]
    assert "RuntimeError: this grid point is broken on purpose" in results[1]["error"]
    alone = make_model(hidden=6, seed=2).fit(X, Y, progress=False, **{**FIT, "epochs": 3})
    assert results[2]["history"] == dict(alone)  # a grid entry named like a fit argument goes to fit
    assert len(results[2]["history"]["loss"]) == 3
    assert results[0]["metrics"]["loss"] == results[0]["history"]["loss"][-1]
    table = format_table(results).splitlines()
    assert table[0] == "| epochs | fail | hidden | seed | status | accuracy | loss | seconds |"
    assert "| failed: RuntimeError: this grid point is broken on purpose |" in table[3]


def test_threaded_sweep_equals_serial():
    X, Y = data()
    grid = {"hidden": [4, 8], "cell": ["rnn-sigmoid", "gru"]}
    serial = fastrnn.sweep(make_model, grid, X, Y, **FIT)
    with ThreadPoolExecutor(2) as executor:
        threaded = fastrnn.sweep(make_model, grid, X, Y, executor=executor, **FIT)
    assert [r["point"] for r in threaded] == grid_points(grid)
    for a, b in zip(serial, threaded):
        assert a["history"] == b["history"]


@pytest.mark.parametrize("options", [{}, {"tbptt": (3, 5)}, {"tbptt": 4, "truncate": 1}],
                         ids=["bptt", "tbptt(3,5)", "tbptt4-k1"])
def test_data_parallel_fit_equals_single_process_up_to_summation_order(options):
    X, Y = data()
    single = make_model(cell="lstm").fit(X, Y, progress=False, **FIT, **options)
    with ThreadPoolExecutor(3) as executor:
        parallel = make_model(cell="lstm").fit(X, Y, progress=False, executor=executor, shards=3, **FIT, **options)
    for key in single:
        # Shards sum their gradients in a fixed order: only the order of float64 sums differs.
        np.testing.assert_allclose(parallel[key], single[key], rtol=1e-10, err_msg=key)


def test_data_parallel_readout_last_and_more_shards_than_samples():
    rng = np.random.default_rng(0)
    X = rng.standard_normal((5, 6, 2))
    y = rng.integers(0, 3, 5)

    def model():
        return fastrnn.Model(fastrnn.GRU(2, 4, seed=0), 3, readout="last", seed=0)

    single = model().fit(X, y, epochs=2, batch_size=5, tbptt=2, progress=False)
    with ThreadPoolExecutor(2) as executor:
        parallel = model().fit(X, y, epochs=2, batch_size=5, tbptt=2, progress=False, executor=executor, shards=8)
    np.testing.assert_allclose(parallel["loss"], single["loss"], rtol=1e-10)


class FailingExecutor:
    """Runs tasks inline, but the ``fail_at``-th submitted task raises on its worker."""

    def __init__(self, fail_at):
        self.fail_at, self.submitted = fail_at, 0

    def submit(self, fn, *args):
        self.submitted += 1
        future = Future()
        if self.submitted == self.fail_at:
            future.set_exception(MemoryError("worker ran out of memory"))
        else:
            future.set_result(fn(*args))
        return future


def test_a_failing_shard_stops_fit_with_the_last_completed_parameters():
    X, Y = data()
    model = make_model()
    executor = FailingExecutor(fail_at=2 * 3 + 2)  # 3 batches of 16, 2 shards each: the 4th update's 2nd shard
    with pytest.raises(WorkerError, match=r"shard 2 of 2 failed on its worker at step 4: MemoryError: worker ran "
                                          r"out of memory; the model keeps the parameters of the last completed"):
        model.fit(X, Y, epochs=2, batch_size=16, optimizer=fastrnn.SGD(0.1), progress=False, executor=executor,
                  shards=2)
    reference = make_model()
    reference.fit(X, Y, epochs=1, batch_size=16, optimizer=fastrnn.SGD(0.1), progress=False)
    for name in model.params:  # exactly the 3 completed updates of epoch 1
        np.testing.assert_allclose(model.params[name], reference.params[name], rtol=1e-12, atol=1e-15)


def test_parallel_arguments_are_checked():
    X, Y = data()
    with pytest.raises(ValueError, match="shards: data-parallel training needs an executor"):
        make_model().fit(X, Y, epochs=1, shards=2)
    with pytest.raises(TypeError, match="executor: expected a concurrent.futures.Executor or a Dask Client, got int"):
        make_model().fit(X, Y, epochs=1, executor=3)
    with ThreadPoolExecutor(1) as executor, pytest.raises(ValueError, match="does not combine with synthetic"):
        make_model().fit(X, Y, epochs=1, tbptt=2, synthetic_gradients=True, executor=executor)


# -- Dask ---------------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def client():
    distributed = pytest.importorskip("distributed")
    # ":0" (a free port): None still binds 8787, and a second cluster (the CLI test's) would fail.
    cluster = distributed.LocalCluster(n_workers=2, threads_per_worker=1, processes=True, dashboard_address=":0")
    with cluster, distributed.Client(cluster) as client:
        yield client


@pytest.mark.filterwarnings("ignore::DeprecationWarning", "ignore::ResourceWarning")
def test_dask_sweep_equals_serial_and_survives_a_killed_worker(client):
    X, Y = data()
    grid = [{"hidden": 4, "seed": 0}, {"die": True}, {"hidden": 8, "seed": 1}, {"cell": "gru", "seed": 2}]
    results = fastrnn.sweep(make_model, grid, X, Y, executor=client, **FIT)
    assert [r["status"] for r in results] == ["ok", "failed", "ok", "ok"]
    assert "KilledWorker" in results[1]["error"]
    serial = fastrnn.sweep(make_model, [grid[0], grid[2], grid[3]], X, Y, **FIT)
    for a, b in zip([results[0], results[2], results[3]], serial):
        assert a["history"] == b["history"]


@pytest.mark.filterwarnings("ignore::DeprecationWarning", "ignore::ResourceWarning")
def test_dask_data_parallel_fit(client):
    X, Y = data()
    single = make_model(cell="gru").fit(X, Y, progress=False, tbptt=3, **FIT)
    parallel = make_model(cell="gru").fit(X, Y, progress=False, tbptt=3, executor=client, shards=2, **FIT)
    for key in single:
        np.testing.assert_allclose(parallel[key], single[key], rtol=1e-10, err_msg=key)


@pytest.mark.filterwarnings("ignore::DeprecationWarning", "ignore::ResourceWarning")
def test_fastrnn_train_on_local_dask_workers(capsys):
    pytest.importorskip("distributed")
    from fastrnn.cli import main

    assert main(["train", "sequence-sum", "--epochs", "1", "--workers", "2", "--no-progress"]) == 0
    out = capsys.readouterr().out
    assert "data-parallel: each batch split across 2 Dask workers" in out and "test R^2" in out


def test_a_failed_data_parallel_run_resumes_from_its_checkpoint(tmp_path):
    """WorkerError in epoch 2 leaves the epoch-1 checkpoint; resuming it (same shards) gives the
    uninterrupted data-parallel run exactly."""
    X, Y = data()
    path = tmp_path / "dp.npz"
    options = dict(epochs=3, batch_size=16, progress=False, shards=2)
    with ThreadPoolExecutor(2) as executor:
        whole = make_model()
        history = whole.fit(X, Y, executor=executor, optimizer=fastrnn.SGD(0.1, momentum=0.5), **options)
        with pytest.raises(WorkerError):
            make_model().fit(X, Y, executor=FailingExecutor(fail_at=2 * 3 + 3), checkpoint=path,
                             optimizer=fastrnn.SGD(0.1, momentum=0.5), **options)
        resumed = make_model(seed=5)  # its own initialisation is replaced by the checkpoint's
        resumed_history = resumed.fit(X, Y, executor=executor, checkpoint=path, resume=True,
                                      optimizer=fastrnn.SGD(0.1, momentum=0.5), **options)
    assert resumed_history == history
    for name in whole.params:
        np.testing.assert_array_equal(resumed.params[name], whole.params[name])
