"""tem_rf.core.lazy: package attributes imported on first use."""

import sys
import types

import pytest

from tem_rf.core.lazy import lazy_attributes


def test_lazy_attribute_is_imported_once_and_kept(monkeypatch):
    package = types.ModuleType("fake_package")
    monkeypatch.setitem(sys.modules, "fake_package", package)
    public, package.__getattr__, package.__dir__ = lazy_attributes(
        "fake_package", {"math": ("sqrt",)}, eager=("eager",)
    )
    assert public == ["eager", "sqrt"]
    import math

    assert package.sqrt is math.sqrt
    assert vars(package)["sqrt"] is math.sqrt  # kept: the next look-up is a plain attribute
    assert dir(package) == ["eager", "sqrt"]
    with pytest.raises(AttributeError, match="module 'fake_package' has no attribute 'cosine'"):
        package.cosine


def test_packages_list_their_lazy_names():
    import tem_rf.serve

    assert "load_predictor" in dir(tem_rf.serve)
    with pytest.raises(AttributeError, match="tem_rf.serve"):
        tem_rf.serve.no_such_name
