"""The Python API inside a line's own program: worker processes forked after an inspection, Inspectors sent to them."""

from __future__ import annotations

import gc
import multiprocessing
import pickle

import pytest
import torch

from inspector import Inspector
from tests.synthetic import good_image

IMAGE = good_image(7)


def _inspect_in_child(insp: Inspector, out) -> None:
    out.put(insp.inspect(IMAGE).score)


def _answer(child, out, hung_means: str):
    """What a forked child put on `out`, once it ended by itself (killed, and `hung_means` said, where it hung)."""
    child.join(timeout=240)  # seconds here; generous for a loaded CI machine
    hung = child.is_alive()
    if hung:
        child.kill()
        child.join()
    assert not hung, hung_means
    assert child.exitcode == 0
    return out.get(timeout=10)

def test_a_forked_worker_inspects_after_the_parent_ran_torch_on_several_threads(tiny_ckpt):
    """GNU OpenMP's thread pool, started by the parent's inspection, does not survive fork(): the child's first
    convolution waited on its threads forever (multiprocessing's default start method on Linux)."""
    threads = torch.get_num_threads()
    torch.set_num_threads(2)  # conftest's OMP_NUM_THREADS=1 hides the trap; a station's program has its cores
    try:
        insp = Inspector.load(tiny_ckpt)
        score = insp.inspect(IMAGE).score  # starts the OpenMP pool in this process
        gc.collect()  # not in the child: an earlier test's onnxruntime session finalised there can hang it (tests.access.fork)
        ctx = multiprocessing.get_context("fork")
        out = ctx.Queue()
        child = ctx.Process(target=_inspect_in_child, args=(insp, out))
        child.start()
        assert _answer(child, out, "the forked child hung in torch") == score
    finally:
        torch.set_num_threads(threads)


@pytest.fixture(scope="module")
def tiny_onnx(tiny_ckpt, tmp_path_factory):
    from exporters.export import export

    return export(tiny_ckpt, ["onnx"], tmp_path_factory.mktemp("onnx57"))[0].path


def test_an_inspector_of_an_onnx_export_pickles_for_a_worker_process_as_a_checkpoints_does(tiny_ckpt, tiny_onnx):
    """An onnxruntime session does not pickle: pool.map(check, [(insp, image)]) was a TypeError naming InferenceSession."""
    for model in (tiny_ckpt, tiny_onnx):
        insp = Inspector.load(model).with_thresholds(image=3.5)
        copy = pickle.loads(pickle.dumps(insp))
        assert copy.engine is not insp.engine and copy.image_threshold == 3.5
        assert copy.inspect(IMAGE).score == insp.inspect(IMAGE).score


def test_a_worker_forked_while_another_thread_inspects_can_inspect(tiny_ckpt):
    """The engine's lock was copied held, by a thread the child does not have: its every inspection waited forever."""
    insp = Inspector.load(tiny_ckpt)
    score = insp.inspect(IMAGE).score
    gc.collect()  # as above
    ctx = multiprocessing.get_context("fork")
    out = ctx.Queue()
    with insp._shared.lock:  # as a thread inferring at the moment of fork() holds it
        child = ctx.Process(target=_inspect_in_child, args=(insp, out))
        child.start()
    assert _answer(child, out, "the forked child waited for the parent's lock") == score
