"""The model folder swap: a save killed (SIGKILL) at any step leaves a model that loads, the next load or save
cleans up, and concurrent writers run one after the other."""

import os
import signal
import threading

import pytest

from regentree.persistence import folder_swap
from regentree import load_model, save_model
from regentree.errors import ModelFolderError


def _killed_at(step, save):
    """Run `save()` in a forked child that SIGKILLs itself when the save reaches `step`; assert it died there."""
    pid = os.fork()
    if pid == 0:  # the child: never returns into pytest
        try:
            def kill_at(name):
                if name == step:
                    os.kill(os.getpid(), signal.SIGKILL)

            folder_swap.FAULT_HOOK = kill_at
            save()
        finally:
            os._exit(3)
    _, status = os.waitpid(pid, 0)
    assert os.WIFSIGNALED(status) and os.WTERMSIG(status) == signal.SIGKILL, f"the save never reached {step!r}"


@pytest.fixture(params=["exchange", "two-renames"])
def swap_mode(request, monkeypatch):
    """Swap with renameat2(RENAME_EXCHANGE), or with the portable fallback of two renames."""
    if request.param == "two-renames":
        monkeypatch.setattr(folder_swap, "_RENAMEAT2", None)
    elif folder_swap._RENAMEAT2 is None:
        pytest.skip("no renameat2 in this C library")
    return request.param


@pytest.mark.parametrize("step", ["weights_written", "staged", "moved_aside", "swapped"])
def test_a_save_killed_at_any_step_leaves_a_model_and_the_next_load_cleans_up(fitted_flat, tmp_path, swap_mode, step):
    if step == "moved_aside" and swap_mode == "exchange":
        pytest.skip("an exchange has no step between two renames")
    model = save_model(fitted_flat, tmp_path / "model")
    _killed_at(step, lambda: save_model(fitted_flat, model))
    assert any(p.name.startswith(".model.") for p in tmp_path.iterdir())  # the killed save left traces
    if step == "moved_aside":
        assert not model.exists()  # the gap of the two-rename fallback: the next load restores the model
    assert load_model(model).classes_.tolist() == fitted_flat.classes_.tolist()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["model"]
    save_model(fitted_flat, model)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["model"]


def test_the_next_save_also_recovers_the_gap_between_two_renames(fitted_flat, tmp_path, monkeypatch):
    monkeypatch.setattr(folder_swap, "_RENAMEAT2", None)
    model = save_model(fitted_flat, tmp_path / "model")
    _killed_at("moved_aside", lambda: save_model(fitted_flat, model))
    assert not model.exists()
    save_model(fitted_flat, model)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["model"]
    load_model(model)


def test_a_first_save_killed_before_its_folder_was_complete_leaves_nothing_behind(fitted_flat, tmp_path):
    _killed_at("weights_written", lambda: save_model(fitted_flat, tmp_path / "model"))
    with pytest.raises(ModelFolderError, match="no such model folder"):
        load_model(tmp_path / "model")  # a partial staged folder is never restored
    assert list(tmp_path.iterdir()) == []


def test_an_exception_between_the_two_renames_puts_the_old_model_back(fitted_flat, tmp_path, monkeypatch):
    monkeypatch.setattr(folder_swap, "_RENAMEAT2", None)
    model = save_model(fitted_flat, tmp_path / "model")
    first = os.stat(model).st_ino

    def fail(step):
        if step == "moved_aside":
            raise OSError("interrupted")

    monkeypatch.setattr(folder_swap, "FAULT_HOOK", fail)
    with pytest.raises(OSError, match="interrupted"):
        save_model(fitted_flat, model)
    assert os.stat(model).st_ino == first and sorted(p.name for p in tmp_path.iterdir()) == ["model"]


def test_concurrent_writers_take_turns_and_readers_always_find_a_model(fitted_flat, tmp_path, monkeypatch):
    model = save_model(fitted_flat, tmp_path / "model")
    steps, errors = [], []
    monkeypatch.setattr(folder_swap, "FAULT_HOOK", lambda step: steps.append((step, threading.get_ident())))

    def run(work, times):
        try:
            for _ in range(times):
                work()
        except Exception as exc:  # collected: an exception in a thread would not fail the test by itself
            errors.append(exc)

    threads = [threading.Thread(target=run, args=(lambda: save_model(fitted_flat, model), 3)) for _ in range(3)]
    threads.append(threading.Thread(target=run, args=(lambda: load_model(model), 6)))
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert errors == []
    saves = [(step, writer) for step, writer in steps if step in ("staged", "swapped")]
    assert len(saves) == 2 * 9
    for (staged, writer), (swapped, same) in zip(saves[::2], saves[1::2]):  # no save starts inside another
        assert (staged, swapped) == ("staged", "swapped") and writer == same
    assert sorted(p.name for p in tmp_path.iterdir()) == ["model"]
    load_model(model)
