"""Procedural 360° worlds with exact ground truth for any camera pose."""

from .actions import ACTION_NAMES, ACTION_TABLE, Action, apply_action
from .camera import DEFAULT_FOV, FOV_MAX, FOV_MIN, PITCH_LIMIT, Pose, interpolate, pose_distance, poses_array
from .scene import STYLE_NAMES, Scene, make_scene, parse_resolution
from .trajectory import Trajectory, block_poses

__all__ = [
    "ACTION_NAMES", "ACTION_TABLE", "Action", "apply_action", "DEFAULT_FOV", "FOV_MAX", "FOV_MIN", "PITCH_LIMIT",
    "Pose", "interpolate", "pose_distance", "poses_array", "STYLE_NAMES", "Scene", "make_scene", "parse_resolution",
    "Trajectory", "block_poses",
]
