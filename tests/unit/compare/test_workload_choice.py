"""`--workload auto` on real nodes: the first image every node already has, else the certification's, pulled."""

from __future__ import annotations

from typing import Any

from ai_storage_orchestrator.compare.workload import (
    IMAGE,
    NUMPY_IMAGE,
    TENSORFLOW_LOCAL_IMAGE,
    node_images,
    workload_for_images,
)


def _node(*names: str) -> dict[str, Any]:
    return {"status": {"images": [{"names": [name, f"{name.split(':')[0]}@sha256:00"]} for name in names]}}


def test_the_certification_image_wins_when_every_node_has_it() -> None:
    both = [node_images(_node(f"docker.io/{IMAGE}", NUMPY_IMAGE))] * 2
    assert workload_for_images(both) == ("tensorflow", f"{IMAGE} is on both nodes")


def test_a_local_stand_in_every_node_has_is_chosen_and_its_scaling_said() -> None:
    numpy_only = [node_images(_node(NUMPY_IMAGE)), node_images(_node(NUMPY_IMAGE, "other:1"))]
    assert workload_for_images(numpy_only) == (
        "numpy",
        f"{NUMPY_IMAGE} is on both nodes, CPU requests x1/2 to fit 2-core nodes",
    )
    with_tensorflow = [node_images(_node(NUMPY_IMAGE, TENSORFLOW_LOCAL_IMAGE))] * 2
    assert workload_for_images(with_tensorflow)[0] == "tensorflow-local"


def test_an_image_only_one_node_has_does_not_count() -> None:
    split = [node_images(_node(NUMPY_IMAGE, IMAGE)), node_images(_node(TENSORFLOW_LOCAL_IMAGE))]
    workload, reason = workload_for_images(split)
    assert workload == "tensorflow"
    assert reason == f"no node has {IMAGE} or a local stand-in yet: the kubelets pull {IMAGE}"
    assert workload_for_images([])[0] == "tensorflow"


def test_a_node_without_an_image_list_has_none() -> None:
    assert node_images({}) == frozenset()
    assert node_images({"status": {"images": [{"sizeBytes": 1}]}}) == frozenset()
