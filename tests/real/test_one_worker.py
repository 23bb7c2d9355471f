"""conftest.py's hook sends every test of this folder to one pytest-xdist worker (they share the ~5-minute walk)."""

from __future__ import annotations

from pathlib import Path


def test_every_real_test_is_in_the_one_xdist_group(request):
    here = Path(__file__).parent
    real = [item for item in request.session.items if here in item.path.parents]
    assert request.node in real
    groups = {item.nodeid: [m.args for m in item.iter_markers("xdist_group")] for item in real}
    assert all(marks == [("real_checkpoints",)] for marks in groups.values()), groups
