"""Procedural surface materials (leather, textile, metal) and the instance-id material.

Every surface material is one node graph built once: the family's base texture (grain, weave,
grinding) from procedural noise in plate millimetres, plus the texture-space maps of
`synth.layers` (reflectance, roughness and height changes of stains and defects) read from one
float RGBA image. Per-image parameters are named Value/RGB nodes (`PARAMS`) that the renderer
sets; nothing is rebuilt between images. Heights are in mm and become a physical bump
(`displacement_method = 'BUMP'`), so grooves, pits and dents shade correctly under raking light.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

import bpy

from synth.blender.nodes import Graph, Input, Socket

MAPS_UV = "maps"  # normalised coordinates of the texture-space maps image
PLATE_UV = "plate_mm"  # plate millimetres, (x right, y down)
# Names of the per-image Value nodes every surface material has (see MaterialSpec): `pattern`
# is 1 for the second pattern of a family (embossed, twill, ground); `period`, `weft_ratio`,
# `direction`, `weft_shade`, `gap_shade` and `mottle` are a textile's weave (see WeaveSpec),
# `grain_contrast` and `crease_width` a leather's grain (see GrainSpec), `mark_contrast`,
# `band_contrast`, `line_contrast` and `grinding_grain` a metal's grinding (see GrindingSpec).
PARAMS = (
    "seed_x", "seed_y", "scale", "roughness", "bump", "variation", "pattern",
    "period", "weft_ratio", "direction", "weft_shade", "gap_shade", "mottle",
    "grain_contrast", "crease_width", "mark_contrast", "band_contrast", "line_contrast", "grinding_grain",
)  # fmt: skip
BASE_COLOR = "base_color"
METALLIC = "metallic"


@dataclass
class Surface:
    """What a family contributes before the stain/defect maps are applied."""

    albedo: Socket
    roughness: Socket
    height_mm: Socket
    bsdf: dict[str, Socket | float] = field(default_factory=dict)  # extra Principled inputs
    gloss: Input = 1.0  # factor on the specular level: tool marks texture the highlight too


@dataclass
class Inputs:
    """The sockets a family builder starts from."""

    p: Socket  # plate mm + per-image random offset
    inv_scale: Socket  # 1 / scale_mm
    params: dict[str, Socket]
    base_color: Socket


Family = Callable[[Graph, Inputs], Surface]


def leather(g: Graph, x: Inputs) -> Surface:
    """Pebbled grain: Voronoi cells warped by noise with rounded tops and sharp creases (of
    crease_width) between them, a finer wrinkle network, sparse pores, creases darker and tops
    glossier by grain_contrast; 'embossed' (pattern 1) adds large deep-grooved scales (a
    croc-like print)."""
    scale, bump, variation = x.params["scale"], x.params["bump"], x.params["variation"]
    _, warp = g.noise(x.p, g.mul(x.inv_scale, 0.35), detail=2.0)
    offset = g.vmath("MULTIPLY", g.vmath("SUBTRACT", warp, (0.5,) * 3), g.mul(scale, 0.9))
    warped = g.vmath("ADD", x.p, offset)
    edge = g.voronoi(warped, x.inv_scale, "DISTANCE_TO_EDGE").outputs["Distance"]
    dome, crease = g.smoothstep(edge, 0.0, 0.35), g.smoothstep(edge, 0.0, x.params["crease_width"])
    fine_edge = g.voronoi(warped, g.mul(x.inv_scale, 2.7), "DISTANCE_TO_EDGE").outputs["Distance"]
    fine = g.smoothstep(fine_edge, 0.0, 0.08)
    pores = g.voronoi(x.p, g.mul(x.inv_scale, 5.0), "F1")
    pore = g.mul(
        g.math("SUBTRACT", 1.0, g.smoothstep(pores.outputs["Distance"], 0.05, 0.15)),
        g.math("GREATER_THAN", g.channels(pores.outputs["Color"])[0], 0.6),
    )
    scales = g.voronoi(warped, g.mul(x.inv_scale, 0.18), "DISTANCE_TO_EDGE").outputs["Distance"]
    emboss = g.mul(x.params["pattern"], g.math("SUBTRACT", 1.0, g.smoothstep(scales, 0.0, 0.05)))
    relief = g.add(
        g.mul(dome, 0.6), g.mul(crease, 0.3), g.mul(fine, 0.2), g.mul(pore, -0.3), g.mul(emboss, -1.2)
    )
    height = g.mul(relief, bump, scale, 0.25)
    mottle, _ = g.noise(x.p, g.mul(x.inv_scale, 0.08), detail=3.0)
    tone = g.madd(g.math("SUBTRACT", mottle, 0.5), g.mul(variation, 5.0), 1.0)
    cavity = g.add(
        0.3, g.mul(crease, 0.4), g.mul(fine, 0.15), g.mul(dome, 0.15), g.mul(pore, -0.2),
        g.mul(emboss, -0.2),
    )  # fmt: skip
    cavity = g.mix(x.params["grain_contrast"], 0.85, cavity)  # exactly `cavity` at contrast 1
    albedo = g.vmath("MULTIPLY", x.base_color, g.mul(tone, cavity, 1.6))
    roughness = g.add(
        x.params["roughness"],
        g.mul(g.math("SUBTRACT", mottle, 0.5), 0.2),
        g.mul(g.math("SUBTRACT", 1.0, dome), 0.2),  # polished tops, dull valleys
    )
    roughness = g.mix(x.params["grain_contrast"], x.params["roughness"], roughness)  # the same at 1
    return Surface(albedo, roughness, height, {"Coat Weight": 0.2, "Coat Roughness": 0.3})


def suede(g: Graph, x: Inputs) -> Surface:
    """A napped (suede, nubuck) leather as `synth.raster.suede` draws it: a short fibre end in
    a random direction at every Voronoi feature point (two offset layers, cells of scale_mm,
    the fibre length) over a fine mottle, little relief, a soft sheen."""
    scale = x.params["scale"]
    fibres: Input = 0.0
    for shift in (0.0, 0.5):
        p = g.vmath("ADD", x.p, g.xyz(g.mul(scale, shift), g.mul(scale, shift)))
        cell = g.voronoi(p, x.inv_scale, "F1")
        angle_random, sign_random, _ = g.channels(cell.outputs["Color"])
        angle = g.mul(angle_random, 3.14159)
        dx, dy, _ = g.split(g.vmath("SUBTRACT", p, cell.outputs["Position"]))
        cos, sin = g.math("COSINE", angle), g.math("SINE", angle)
        along = g.add(g.mul(dx, cos), g.mul(dy, sin))
        across = g.math("SUBTRACT", g.mul(dy, cos), g.mul(dx, sin))
        distance = g.math("DIVIDE", g.math("ABSOLUTE", across), g.mul(scale, 0.1))
        width = g.math("MAXIMUM", g.math("SUBTRACT", 1.0, distance), 0.0)
        short = g.math("LESS_THAN", g.math("ABSOLUTE", along), g.mul(scale, 0.4))
        fibres = g.add(fibres, g.mul(width, short, g.madd(sign_random, 2.0, -1.0)))
    mottle, _ = g.noise(x.p, g.mul(x.inv_scale, 0.3), detail=2.0)
    fine, _ = g.noise(x.p, g.mul(x.inv_scale, 6.0), detail=2.0)
    mottle, fine = g.madd(mottle, 2.0, -1.0), g.madd(fine, 2.0, -1.0)
    variation = g.add(g.mul(fibres, 1.2), g.mul(mottle, 0.2), fine)
    variation = g.math("MINIMUM", g.math("MAXIMUM", variation, -1.5), 1.5)
    albedo = g.vmath("MULTIPLY", x.base_color, g.madd(variation, x.params["variation"], 1.0))
    height = g.mul(fine, x.params["bump"], 0.3 * 0.05)  # the raster view's relief in mm
    roughness = g.madd(fine, 0.1, x.params["roughness"])
    return Surface(albedo, roughness, height, {"Sheen Weight": 0.5, "Sheen Roughness": 0.5})


def textile(g: Graph, x: Inputs) -> Surface:
    """Woven yarns: warp along y at pitch scale_mm, weft along x at weft_ratio x that, over/under
    by the weave (the warp on top where (i + direction·j) mod period < period - 1.5: plain
    period 2, twill 2/1 period 3, ...), rounded yarn sections arching between crossings (a
    yarn's edge at gap_shade of its crown, a weft on top at weft_shade of a warp), per-thread
    tone and thickness, a mottle of about 1 mm (uneven yarn), fibres along each yarn, and
    fuzz."""
    u, v, _ = g.split(g.vmath("MULTIPLY", x.p, x.inv_scale))
    v = g.math("DIVIDE", v, x.params["weft_ratio"])
    i, j = g.math("FLOOR", u), g.math("FLOOR", v)
    fu, fv = g.math("SUBTRACT", u, i), g.math("SUBTRACT", v, j)
    period = x.params["period"]
    phase = g.math("FLOORED_MODULO", g.add(i, g.mul(j, x.params["direction"])), period)
    warp_top = g.math("LESS_THAN", phase, g.math("SUBTRACT", period, 1.5))

    def yarn(across: Socket, along: Socket, thread_id: Socket) -> tuple[Socket, Socket]:
        """(height in [0, 1], tone in [-0.5, 0.5]) of the yarn on top: a rounded section that
        arches between crossings, with a slight twist."""
        jitter = g.white_noise(thread_id)
        a = g.math("DIVIDE", g.madd(across, 2.0, -1.0), g.madd(jitter, 0.14, 0.8))
        section = g.math("SQRT", g.math("MAXIMUM", g.math("SUBTRACT", 1.0, g.mul(a, a)), 0.0))
        arch = g.madd(g.math("SINE", g.mul(along, 3.14159)), 0.45, 0.55)
        twist = g.math("SINE", g.mul(g.add(g.mul(along, 4.0), g.mul(a, 1.2)), 6.2832))
        return g.mul(section, g.madd(twist, 0.06, arch)), g.math("SUBTRACT", jitter, 0.5)

    warp_h, warp_tone = yarn(fu, fv, g.xyz(i, 3.7))
    weft_h, weft_tone = yarn(fv, fu, g.xyz(5.1, j))
    h = g.mix(warp_top, weft_h, warp_h)
    fibres_warp, _ = g.noise(g.xyz(g.mul(u, 9.0), g.mul(v, 0.8)), 1.0, detail=4.0)
    fibres_weft, _ = g.noise(g.xyz(g.madd(u, 0.8, 17.0), g.mul(v, 9.0)), 1.0, detail=4.0)
    fibres = g.math("SUBTRACT", g.mix(warp_top, fibres_weft, fibres_warp), 0.5)
    fuzz, _ = g.noise(x.p, g.mul(x.inv_scale, 14.0), detail=6.0, roughness=0.7)
    relief = g.add(h, g.mul(fibres, 0.25), g.mul(fuzz, 0.12))
    height = g.mul(relief, x.params["bump"], x.params["scale"], 0.35)
    tone = g.madd(g.mix(warp_top, weft_tone, warp_tone), g.mul(x.params["variation"], 2.0), 1.0)
    gap = x.params["gap_shade"]
    shade = g.mul(
        g.add(gap, g.mul(h, g.math("SUBTRACT", 1.0, gap))),
        g.madd(fibres, 0.5, 1.0),
        g.mix(warp_top, x.params["weft_shade"], 1.0),
    )
    cloud, _ = g.noise(x.p, 1.0, detail=2.0)  # about 1 mm
    cloud = g.madd(g.math("SUBTRACT", cloud, 0.5), g.mul(x.params["mottle"], 2.0), 1.0)  # 1 at mottle 0
    albedo = g.vmath("MULTIPLY", x.base_color, g.mul(tone, shade, 1.5, cloud))
    roughness = g.madd(fibres, 0.2, x.params["roughness"])
    return Surface(albedo, roughness, height, {"Sheen Weight": 0.6, "Sheen Roughness": 0.4})


def metal(g: Graph, x: Inputs) -> Surface:
    """Fine parallel tool marks along the plate's y axis: 'brushed' (pattern 0) is smooth
    stretched noise with anisotropic highlights; 'ground' (pattern 1) is ground ferrite: shorter,
    subtler grinding marks over an isotropic sintered grain with sparse dark pores, a few
    grooves and faint bright streaks, and low-frequency unevenness (real ground tiles show
    grain and pores as much as marks, so their gradients are only ~3× stronger across x)."""
    px, py, _ = g.split(x.p)
    pattern, variation = x.params["pattern"], x.params["variation"]

    def streaks(across: float, along: Input, detail: float) -> Socket:
        """Noise stretched along y: `across` marks per scale_mm across, `along` along."""
        vector = g.xyz(g.mul(px, x.inv_scale, across), g.mul(py, x.inv_scale, along))
        return g.math("SUBTRACT", g.noise(vector, 1.0, detail=detail, roughness=0.65)[0], 0.5)

    marks = streaks(1.0, g.mix(pattern, 0.02, 0.07), 8.0)
    bands = streaks(0.12, 0.004, 3.0)
    sharp = g.math("SUBTRACT", g.smoothstep(streaks(0.6, 0.02, 2.0), 0.1, 0.2), 0.2)
    grooves = g.voronoi(
        g.xyz(g.mul(px, x.inv_scale, 0.6), g.mul(py, x.inv_scale, 0.01)), 1.0, "DISTANCE_TO_EDGE"
    ).outputs["Distance"]
    groove = g.mul(pattern, g.math("SUBTRACT", 1.0, g.smoothstep(grooves, 0.0, 0.06)))
    grain = g.mul(
        pattern, g.math("SUBTRACT", g.noise(x.p, g.mul(x.inv_scale, 2.5), detail=2.0, roughness=0.6)[0], 0.5)
    )
    pores = g.voronoi(x.p, g.mul(x.inv_scale, 0.5), "F1")
    pore = g.mul(
        pattern,
        g.math("SUBTRACT", 1.0, g.smoothstep(pores.outputs["Distance"], 0.08, 0.2)),
        g.math("GREATER_THAN", g.channels(pores.outputs["Color"])[0], 0.93),
    )
    mottle, _ = g.noise(x.p, g.mul(x.inv_scale, 0.012), detail=3.0)
    relief = g.add(marks, g.mul(groove, -0.5), g.mul(sharp, pattern, 0.3), grain, g.mul(pore, -1.5))
    height = g.mul(relief, x.params["bump"], x.params["scale"], 0.03)
    # The grinding contrasts scale the albedo terms only (each exactly as before at 1).
    lines = x.params["line_contrast"]
    streak = g.add(
        g.mul(marks, x.params["mark_contrast"]),
        g.mul(
            pattern,
            g.add(
                g.mul(bands, 0.5, x.params["band_contrast"]),
                g.mul(sharp, 0.4, lines),
                g.mul(grain, 0.8, x.params["grinding_grain"]),
            ),
        ),
    )
    tone = g.add(
        1.0,
        g.mul(streak, variation, 5.0),
        g.mul(g.math("SUBTRACT", mottle, 0.5), variation, g.madd(pattern, 4.0, 1.0)),
        g.mul(groove, -0.2, lines),
        g.mul(pore, -0.4),
    )
    albedo = g.vmath("MULTIPLY", x.base_color, g.math("MAXIMUM", tone, 0.0))
    roughness = g.add(
        x.params["roughness"], g.mul(marks, 0.25), g.mul(streak, pattern, -0.1), g.mul(pore, 0.3)
    )
    gloss = g.mix(pattern, 1.0, g.math("MAXIMUM", g.madd(streak, 2.5, 1.0), 0.0))
    tangent = g.node("ShaderNodeTangent", direction_type="UV_MAP", uv_map=PLATE_UV).outputs[0]
    bsdf = {
        "Metallic": g.param(METALLIC, 1.0),
        "Anisotropic": g.mix(pattern, 0.7, 0.3),
        "Anisotropic Rotation": 0.25,
        "Tangent": tangent,
    }
    return Surface(albedo, roughness, height, bsdf, gloss)


FAMILIES: dict[str, Family] = {"leather": leather, "textile": textile, "metal": metal}
# Every material the renderer builds: a family's, or a pattern with a graph of its own (so that
# adding it changes nothing in its family's graph or renders).
MATERIALS: dict[str, Family] = {**FAMILIES, "suede": suede}


def material_name(family: str, pattern: str) -> str:
    """The key in MATERIALS of a family's pattern."""
    return pattern if pattern in MATERIALS else family


def surface_material(name: str, family: Family, maps: bpy.types.Image) -> bpy.types.Material:
    """Family texture + stain/defect maps → Principled BSDF with a physical bump."""
    material = bpy.data.materials.new(name)
    material.displacement_method = "BUMP"
    g = Graph(material)
    params = {key: g.param(key) for key in PARAMS}
    offset = g.xyz(params["seed_x"], params["seed_y"])
    inputs = Inputs(
        p=g.vmath("ADD", g.uv(PLATE_UV), offset),
        inv_scale=g.math("DIVIDE", 1.0, params["scale"]),
        params=params,
        base_color=g.color_param(BASE_COLOR),
    )
    surface = family(g, inputs)
    texels = g.image(maps, g.uv(MAPS_UV), "Linear").outputs["Color"]
    reflectance, roughness, height_mm = g.channels(texels)
    albedo = g.vmath("ADD", surface.albedo, reflectance)
    albedo = g.vmath("MINIMUM", g.vmath("MAXIMUM", albedo, (0.0,) * 3), (1.0,) * 3)
    # A stain or defect changes the specular reflection by the same factor as the albedo;
    # otherwise it would vanish under the gloss of dark materials (ferrite, black leather).
    luminance = g.vmath("DOT_PRODUCT", inputs.base_color, (0.2126, 0.7152, 0.0722))
    relative = g.math("DIVIDE", reflectance, g.math("MAXIMUM", luminance, 0.05))
    specular = g.mul(g.math("MAXIMUM", g.add(relative, 1.0), 0.0), surface.gloss, 0.5)
    bsdf = g.node(
        "ShaderNodeBsdfPrincipled",
        {
            "Base Color": albedo,
            "Roughness": g.math("ADD", surface.roughness, roughness, clamp=True),
            "Specular IOR Level": specular,
            **surface.bsdf,
        },
    )
    height_m = g.mul(g.add(surface.height_mm, height_mm), 1e-3)
    displacement = g.node("ShaderNodeDisplacement", {"Height": height_m, "Midlevel": 0.0})
    g.node(
        "ShaderNodeOutputMaterial",
        {"Surface": bsdf.outputs[0], "Displacement": displacement.outputs[0]},
    )
    return material


def id_material(maps: bpy.types.Image) -> bpy.types.Material:
    """Emits the instance id of the texel under each pixel (alpha of the maps image, nearest
    texel, no filtering), so an unfiltered 1-sample render decodes to exact ids."""
    material = bpy.data.materials.new("instance_ids")
    g = Graph(material)
    ids = g.image(maps, g.uv(MAPS_UV), "Closest").outputs["Alpha"]
    emission = g.node("ShaderNodeEmission", {"Color": g.xyz(ids, ids, ids), "Strength": 1.0})
    g.node("ShaderNodeOutputMaterial", {"Surface": emission.outputs[0]})
    return material
