"""The camera action table: the one place that says what each discrete action does and says.

Each action moves the pose by a delta (degrees) over one block of frames and has a prompt phrase the
generator is conditioned on. The environment's ``Discrete`` index is the position in this table.
"""

from __future__ import annotations

from dataclasses import dataclass

from .camera import Pose


@dataclass(frozen=True)
class Action:
    name: str
    d_yaw: float
    d_pitch: float
    d_fov: float
    phrase: str

    def as_dict(self) -> dict[str, float | str]:
        return {"name": self.name, "d_yaw": self.d_yaw, "d_pitch": self.d_pitch, "d_fov": self.d_fov, "phrase": self.phrase}


PAN_STEP, TILT_STEP, ZOOM_STEP = 15.0, 10.0, 10.0

ACTION_TABLE: tuple[Action, ...] = (
    Action("stay", 0.0, 0.0, 0.0, "the camera holds still"),
    Action("pan_left", -PAN_STEP, 0.0, 0.0, "the camera pans left"),
    Action("pan_right", PAN_STEP, 0.0, 0.0, "the camera pans right"),
    Action("tilt_up", 0.0, TILT_STEP, 0.0, "the camera tilts up"),
    Action("tilt_down", 0.0, -TILT_STEP, 0.0, "the camera tilts down"),
    Action("zoom_in", 0.0, 0.0, -ZOOM_STEP, "the camera zooms in"),
    Action("zoom_out", 0.0, 0.0, ZOOM_STEP, "the camera zooms out"),
)
ACTION_NAMES: tuple[str, ...] = tuple(a.name for a in ACTION_TABLE)
ACTION_INDEX: dict[str, int] = {name: i for i, name in enumerate(ACTION_NAMES)}
_BY_DELTA = {(a.d_yaw, a.d_pitch, a.d_fov): a.name for a in ACTION_TABLE}
# the action that undoes each one (negated deltas; stay undoes stay), e.g. "pan_left" -> "pan_right"
INVERSE_ACTION: dict[str, str] = {a.name: _BY_DELTA[(-a.d_yaw, -a.d_pitch, -a.d_fov)] for a in ACTION_TABLE}


def apply_action(pose: Pose, action: int) -> Pose:
    """The pose after one step of ``action`` (an index into :data:`ACTION_TABLE`)."""
    a = ACTION_TABLE[action]
    return pose.moved(a.d_yaw, a.d_pitch, a.d_fov)
