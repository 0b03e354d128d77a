"""A pass works on its own copy of an object: changing it changes nothing the watch or a cache holds."""
from __future__ import annotations

from collections.abc import Mapping

from ssvm_operator.model.snapshot import json_copy


class View(Mapping):
    """Stands for a kopf body view: a Mapping that is not a dict."""

    def __init__(self, src):
        self._src = src

    def __getitem__(self, key):
        return self._src[key]

    def __iter__(self):
        return iter(self._src)

    def __len__(self):
        return len(self._src)


def test_a_copy_shares_no_dict_or_list_with_the_original():
    original = {"metadata": {"name": "a", "labels": {"x": "1"}}, "status": {"conditions": [{"type": "Ready"}], "n": 1.5,
                                                                          "ok": True, "none": None}}
    copied = json_copy(View(original))
    assert type(copied) is dict and copied == original
    copied["metadata"]["labels"]["x"] = "2"
    copied["status"]["conditions"][0]["type"] = "Gone"
    copied["status"]["conditions"].append({})
    assert original["metadata"]["labels"]["x"] == "1"
    assert original["status"]["conditions"] == [{"type": "Ready"}]


def test_what_is_not_parsed_json_is_still_copied_deeply():
    original = {"pair": (1, [2])}
    copied = json_copy(original)
    copied["pair"][1].append(3)
    assert original["pair"] == (1, [2]) and type(copied["pair"]) is tuple
