"""A small builder for shader node graphs, so materials read as formulas, not as wiring."""

from __future__ import annotations

from typing import Any

import bpy

Socket = bpy.types.NodeSocket
Input = Socket | float | tuple[float, ...]


class Graph:
    """Wraps a material's node tree; every helper returns an output socket."""

    def __init__(self, material: bpy.types.Material) -> None:
        self.tree = material.node_tree
        self.tree.nodes.clear()

    def node(self, kind: str, inputs: dict[str | int, Input] | None = None, **props: Any) -> Any:
        node = self.tree.nodes.new(kind)
        for name, value in props.items():
            setattr(node, name, value)
        for key, value in (inputs or {}).items():
            self.connect(value, node.inputs[key])
        return node

    def connect(self, value: Input, target: Socket) -> None:
        if isinstance(value, bpy.types.NodeSocket):
            self.tree.links.new(value, target)
        else:
            target.default_value = value

    def param(self, name: str, default: float = 0.0) -> Socket:
        """A named Value node: the renderer changes it per image without rebuilding."""
        node = self.node("ShaderNodeValue", name=name)
        node.outputs[0].default_value = default
        return node.outputs[0]

    def color_param(self, name: str) -> Socket:
        return self.node("ShaderNodeRGB", name=name).outputs[0]

    def math(self, op: str, a: Input, b: Input = 0.0, c: Input = 0.0, clamp: bool = False) -> Socket:
        node = self.node("ShaderNodeMath", {0: a, 1: b, 2: c}, operation=op, use_clamp=clamp)
        return node.outputs[0]

    def add(self, *terms: Input) -> Socket:
        total = terms[0]
        for term in terms[1:]:
            total = self.math("ADD", total, term)
        return total  # type: ignore[return-value]

    def mul(self, *factors: Input) -> Socket:
        total = factors[0]
        for factor in factors[1:]:
            total = self.math("MULTIPLY", total, factor)
        return total  # type: ignore[return-value]

    def madd(self, a: Input, b: Input, c: Input) -> Socket:
        """a·b + c."""
        return self.math("MULTIPLY_ADD", a, b, c)

    def vmath(self, op: str, a: Input, b: Input = (0.0, 0.0, 0.0)) -> Socket:
        node = self.node("ShaderNodeVectorMath", {0: a, 1: b}, operation=op)
        return node.outputs["Value" if op in ("DOT_PRODUCT", "LENGTH") else "Vector"]

    def xyz(self, x: Input, y: Input, z: Input = 0.0) -> Socket:
        return self.node("ShaderNodeCombineXYZ", {0: x, 1: y, 2: z}).outputs[0]

    def split(self, vector: Input) -> tuple[Socket, Socket, Socket]:
        out = self.node("ShaderNodeSeparateXYZ", {0: vector}).outputs
        return out[0], out[1], out[2]

    def channels(self, color: Input) -> tuple[Socket, Socket, Socket]:
        out = self.node("ShaderNodeSeparateColor", {0: color}).outputs
        return out[0], out[1], out[2]

    def smoothstep(self, x: Input, lo: Input, hi: Input) -> Socket:
        """0 below lo, 1 above hi, smooth in between."""
        node = self.node(
            "ShaderNodeMapRange",
            {"Value": x, "From Min": lo, "From Max": hi},
            interpolation_type="SMOOTHSTEP",
        )
        return node.outputs["Result"]

    def mix(self, factor: Input, a: Input, b: Input) -> Socket:
        """a where factor = 0, b where factor = 1 (floats)."""
        return self.node("ShaderNodeMix", {0: factor, 2: a, 3: b}).outputs[0]

    def noise(
        self, vector: Input, scale: Input, detail: float = 2.0, roughness: float = 0.5
    ) -> tuple[Socket, Socket]:
        """(fac in ~[0, 1], colour) of 2D fBm Perlin noise (the surface is a plane in mm:
        2D textures cost a third of 3D ones)."""
        node = self.node(
            "ShaderNodeTexNoise",
            {"Vector": vector, "Scale": scale, "Detail": detail, "Roughness": roughness},
            noise_dimensions="2D",
        )
        return node.outputs[0], node.outputs[1]

    def voronoi(self, vector: Input, scale: Input, feature: str = "F1", randomness: float = 1.0) -> Any:
        return self.node(
            "ShaderNodeTexVoronoi",
            {"Vector": vector, "Scale": scale, "Randomness": randomness},
            feature=feature,
            voronoi_dimensions="2D",
        )

    def white_noise(self, vector: Input) -> Socket:
        """A random value in [0, 1) per distinct input (e.g. per thread index)."""
        return self.node("ShaderNodeTexWhiteNoise", {"Vector": vector}, noise_dimensions="2D").outputs[
            "Value"
        ]

    def uv(self, layer: str) -> Socket:
        return self.node("ShaderNodeUVMap", uv_map=layer).outputs["UV"]

    def image(self, image: bpy.types.Image, vector: Input, interpolation: str) -> Any:
        return self.node(
            "ShaderNodeTexImage",
            {"Vector": vector},
            image=image,
            interpolation=interpolation,
            extension="EXTEND",
        )
