"""The Blender view of a SceneSpec (the only package that imports bpy)."""

from synth.blender.renderer import BlenderRenderer, blender_version, gpu_setup

__all__ = ["BlenderRenderer", "blender_version", "gpu_setup"]
