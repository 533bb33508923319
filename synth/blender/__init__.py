"""The Blender view of a SceneSpec (the only package that imports bpy)."""

from synth.blender.renderer import BlenderRenderer, RenderResult, blender_version

__all__ = ["BlenderRenderer", "RenderResult", "blender_version"]
