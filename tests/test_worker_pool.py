"""`_tools/worker_pool.py`: the video tools' pool gives fn(job) in order, and its workers do not inherit
locks that the caller's threads hold (a forked pool hung on PyAV's after PyAV had decoded in the caller)."""
import multiprocessing as mp
import threading

from tool_loader import worker_pool

HELD = threading.Lock()  # held by a thread of the calling process during the test


def _lock_is_free(timeout):
    """In a worker: can this module's HELD be taken (False when the worker inherited it held)?"""
    if HELD.acquire(timeout=timeout):
        HELD.release()
        return True
    return False


def _square(x):
    return x * x


def test_results_come_in_order_from_workers_and_from_this_process():
    with worker_pool.imap(_square, range(7), workers=2, chunksize=2) as it:
        assert list(it) == [x * x for x in range(7)]
    with worker_pool.imap(_square, range(7), workers=2, ordered=False) as it:
        assert sorted(it) == [x * x for x in range(7)]
    with worker_pool.imap(_square, range(3), workers=1) as it:  # no pool: map in this process
        assert isinstance(it, map) and list(it) == [0, 1, 4]


def test_desc_shows_a_progress_bar_on_stderr(capsys):
    for workers in (1, 2):
        with worker_pool.imap(_square, range(5), workers=workers, desc=f"squares {workers}") as it:
            assert list(it) == [0, 1, 4, 9, 16]
        assert f"squares {workers}" in capsys.readouterr().err


def test_workers_do_not_inherit_a_lock_held_by_another_thread():
    assert worker_pool.start_method() != "fork"
    taken, done = threading.Event(), threading.Event()

    def hold():
        with HELD:
            taken.set()
            done.wait()

    t = threading.Thread(target=hold)
    t.start()
    try:
        taken.wait()
        with worker_pool.imap(_lock_is_free, [0.5, 0.5], workers=2) as it:
            assert list(it) == [True, True]
        if "fork" in mp.get_all_start_methods():  # the hazard is real: a forked worker finds the lock held
            with mp.get_context("fork").Pool(1) as forked:
                assert forked.apply(_lock_is_free, (0.5,)) is False
    finally:
        done.set()
        t.join()
