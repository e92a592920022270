"""A local emulator of the Qrvey dataset and connection API (see docs/emulator.md).

Built from ``qrvey-api.md`` alone; imports no other part of qrvey_iac.
"""

from qrvey_iac.emulator.app import Emulator, create_app
from qrvey_iac.emulator.config import EmulatorConfig
from qrvey_iac.emulator.faults import FaultRule, FaultSet, parse_faults
from qrvey_iac.emulator.transport import EmulatorTransport
from qrvey_iac.emulator.world import World

__all__ = [
    "Emulator",
    "EmulatorConfig",
    "EmulatorTransport",
    "FaultRule",
    "FaultSet",
    "World",
    "create_app",
    "parse_faults",
]
