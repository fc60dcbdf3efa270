"""What the three SpotVLM nodes share: a lifecycle node with the config parameters, QoS, diagnostics, main.

:class:`SpotVlmNode` declares every parameter from the schema (``runtime.ros_params``) with a
``ParameterDescriptor``, keeps ``self.config`` validated through the schema (a bad change is rejected
with the schema's message), publishes ``/diagnostics`` through ``diagnostic_updater`` from the
subclass's :meth:`SpotVlmNode.diagnostic_report`, and turns lifecycle transitions into plain
``configure/activate/deactivate/cleanup`` methods whose exceptions are logged (rclpy would swallow them).
:func:`run_node` self-activates when ``self_activate`` is true, so ``ros2 run`` just works.
"""

from __future__ import annotations

import sys
from collections.abc import Callable
from typing import Any

import rclpy
from diagnostic_msgs.msg import DiagnosticStatus
from diagnostic_updater import Updater
from rcl_interfaces.msg import FloatingPointRange, IntegerRange, ParameterDescriptor, SetParametersResult
from rclpy.exceptions import ParameterException, ParameterUninitializedException
from rclpy.executors import ExternalShutdownException, MultiThreadedExecutor
from rclpy.lifecycle import LifecycleState, TransitionCallbackReturn
from rclpy.lifecycle import Node as LifecycleNode
from rclpy.parameter import Parameter
from rclpy.qos import DurabilityPolicy, HistoryPolicy, QoSProfile, ReliabilityPolicy
from rosidl_runtime_py import set_message_fields

from ..core.config import ConfigError, SpotVlmConfig
from ..runtime.diagnostics import OK, DiagnosticReport
from ..runtime.qos import QosSpec
from ..runtime.ros_params import (
    SELF_ACTIVATE,
    ParamDeclaration,
    apply_changes,
    changed_keys,
    config_from_parameters,
    parameter_declarations,
)

_TYPES = {
    "bool": Parameter.Type.BOOL,
    "integer": Parameter.Type.INTEGER,
    "double": Parameter.Type.DOUBLE,
    "string": Parameter.Type.STRING,
    "string_array": Parameter.Type.STRING_ARRAY,
}
_LEVELS = {
    0: DiagnosticStatus.OK,
    1: DiagnosticStatus.WARN,
    2: DiagnosticStatus.ERROR,
    3: DiagnosticStatus.STALE,
}


def qos_profile(spec: QosSpec) -> QoSProfile:
    """The rclpy profile of a :class:`QosSpec` (keep last)."""
    return QoSProfile(
        history=HistoryPolicy.KEEP_LAST,
        depth=spec.depth,
        reliability=ReliabilityPolicy.RELIABLE
        if spec.reliability == "reliable"
        else ReliabilityPolicy.BEST_EFFORT,
        durability=(
            DurabilityPolicy.TRANSIENT_LOCAL
            if spec.durability == "transient_local"
            else DurabilityPolicy.VOLATILE
        ),
    )


def qos_spec(profile: Any) -> QosSpec:
    """A :class:`QosSpec` of a profile some publisher offers (for the no-frames diagnosis)."""
    reliable = profile.reliability == ReliabilityPolicy.RELIABLE
    latched = profile.durability == DurabilityPolicy.TRANSIENT_LOCAL
    return QosSpec("reliable" if reliable else "best_effort", "transient_local" if latched else "volatile", 1)


def descriptor(decl: ParamDeclaration) -> ParameterDescriptor:
    """The ``ParameterDescriptor`` of a declaration (description, constraints, ranges, read-only)."""
    desc = ParameterDescriptor(
        name=decl.name,
        type=_TYPES[decl.ros_type].value,
        description=decl.description,
        additional_constraints=decl.additional_constraints,
        read_only=decl.read_only,
    )
    if decl.integer_range is not None:
        desc.integer_range = [
            IntegerRange(from_value=decl.integer_range[0], to_value=decl.integer_range[1], step=1)
        ]
    if decl.float_range is not None:
        desc.floating_point_range = [
            FloatingPointRange(from_value=decl.float_range[0], to_value=decl.float_range[1], step=0.0)
        ]
    return desc


def fill(msg: Any, fields: dict[str, Any]) -> Any:
    """``msg`` with ``fields`` (a dict in ROS layout from ``core.messages``) set; returns ``msg``."""
    set_message_fields(msg, fields)
    return msg


class SpotVlmNode(LifecycleNode):
    """Lifecycle node with the SpotVLM parameters, validated config, diagnostics and logged transitions."""

    def __init__(self, name: str, **kwargs: Any) -> None:
        super().__init__(name, **kwargs)
        self._declared = [d.name for d in parameter_declarations()]
        self._unset: dict[str, Any] = {}  # empty-list defaults: declared by type, read as the default
        for decl in parameter_declarations():
            if decl.default == []:  # rclpy cannot infer a type from []: declare it by its type
                self._unset[decl.name] = []
                self.declare_parameter(decl.name, _TYPES[decl.ros_type], descriptor(decl))
            else:
                self.declare_parameter(decl.name, decl.default, descriptor(decl))
        self.config: SpotVlmConfig = config_from_parameters(self._values())
        self.active = False
        self.add_on_set_parameters_callback(self._on_set_parameters)
        self._updater = Updater(self)
        self._updater.setHardwareID(name)
        self._updater.add(name, self._fill_status)

    def _values(self) -> dict[str, Any]:
        return {name: self._value(name) for name in self._declared}

    def _value(self, name: str) -> Any:
        try:
            return self.get_parameter(name).value
        except ParameterUninitializedException:  # an empty list never set (see __init__)
            return self._unset[name]

    def _on_set_parameters(self, params: list[Parameter]) -> SetParametersResult:
        changes = {p.name: p.value for p in params if p.name in self._declared}
        if not changes:
            return SetParametersResult(successful=True)
        try:
            new = apply_changes(self._values(), changes)
        except ConfigError as err:
            return SetParametersResult(successful=False, reason=str(err))
        old, self.config = self.config, new
        keys = changed_keys(old, new)
        if keys:
            self.get_logger().info(f"parameters changed: {', '.join(sorted(keys))}")
            self.on_config_change(keys)
        return SetParametersResult(successful=True)

    def _fill_status(self, stat: Any) -> Any:
        report = self.diagnostic_report()
        stat.summary(_LEVELS[report.level], report.message)
        for key, value in report.values.items():
            stat.add(key, value)
        return stat

    def now_ns(self) -> int:
        """The node clock (sim time under ``use_sim_time``) in nanoseconds."""
        return self.get_clock().now().nanoseconds

    # ---- what subclasses implement --------------------------------------------------------------------
    def configure(self) -> None:
        """Create publishers and what does not need the model."""

    def activate(self) -> None:
        """Load the model, subscribe."""

    def deactivate(self) -> None:
        """Unsubscribe, free the model (and the GPU cache)."""

    def cleanup(self) -> None:
        """Destroy what ``configure`` created."""

    def stop(self) -> None:
        """Process exit: stop threads quickly; nothing is freed (the process ends)."""

    def on_config_change(self, keys: set[str]) -> None:
        """Apply a validated change of ``keys`` (``self.config`` is already the new config)."""

    def diagnostic_report(self) -> DiagnosticReport:
        """The node's ``/diagnostics`` status; the nodes report their own figures, this says it is alive."""
        return DiagnosticReport(OK, "running")

    # ---- lifecycle plumbing ---------------------------------------------------------------------------
    def _transition(self, name: str, step: Callable[[], None]) -> TransitionCallbackReturn:
        try:
            step()
        except Exception as err:  # rclpy turns exceptions into a silent ERROR transition: say why
            self.get_logger().error(f"{name} failed: {type(err).__name__}: {err}")
            return TransitionCallbackReturn.FAILURE
        self.get_logger().info(f"{name}: done")
        return TransitionCallbackReturn.SUCCESS

    def on_configure(self, state: LifecycleState) -> TransitionCallbackReturn:
        return self._transition("configure", self.configure)

    def on_activate(self, state: LifecycleState) -> TransitionCallbackReturn:
        result = self._transition("activate", self.activate)
        if result == TransitionCallbackReturn.SUCCESS:
            self.active = True
            return super().on_activate(state)  # enables the lifecycle publishers
        return result

    def on_deactivate(self, state: LifecycleState) -> TransitionCallbackReturn:
        self.active = False
        super().on_deactivate(state)
        return self._transition("deactivate", self.deactivate)

    def on_cleanup(self, state: LifecycleState) -> TransitionCallbackReturn:
        return self._transition("cleanup", self.cleanup)

    def on_shutdown(self, state: LifecycleState) -> TransitionCallbackReturn:
        if self.active:
            self.on_deactivate(state)
        return self._transition("shutdown", self.cleanup)


def run_node(factory: Callable[[], SpotVlmNode], args: list[str] | None = None) -> int:
    """Create the node, self-activate unless ``self_activate`` is false, spin on a multi-threaded executor."""
    rclpy.init(args=args)
    try:
        node = factory()
    except (ConfigError, ParameterException) as err:
        print(f"invalid parameters: {err}", file=sys.stderr)
        rclpy.try_shutdown()
        return 2
    executor = MultiThreadedExecutor(num_threads=4)
    executor.add_node(node)
    configured = node.get_parameter(SELF_ACTIVATE).value and node.trigger_configure()
    if configured == TransitionCallbackReturn.SUCCESS:
        node.trigger_activate()
    try:
        executor.spin()
    except (KeyboardInterrupt, ExternalShutdownException):
        pass
    finally:
        node.stop()
        node.destroy_node()
        rclpy.try_shutdown()
    return 0
