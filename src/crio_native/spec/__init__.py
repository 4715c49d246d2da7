"""Pure CRI request + sandbox + image config -> OCI runtime spec (config.json).

Entry point: build_container_spec(SpecInputs(...)) -> SpecBuild."""
from crio_native.spec.builder import STEPS, build_container_spec
from crio_native.spec.inputs import DeviceNode, SpecBuild, SpecInputs

__all__ = ["STEPS", "DeviceNode", "SpecBuild", "SpecInputs", "build_container_spec"]
