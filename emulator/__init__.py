"""Embedded Salesforce emulator: a real HTTPS server speaking the REST and Bulk 2.0 query APIs over synthetic data."""

from emulator.org import DEFAULT_SEED, Org, build_org
from emulator.runner import (
    EmulatorInfo,
    change_field,
    configure_jwt_key,
    emulator_session,
    freeze_clock,
    get_state,
    purge,
    reset_state,
    run_emulator,
    set_faults,
    undelete,
)

__all__ = [
    "DEFAULT_SEED", "EmulatorInfo", "Org", "build_org", "change_field", "configure_jwt_key", "emulator_session",
    "freeze_clock", "get_state", "purge", "reset_state", "run_emulator", "set_faults", "undelete",
]
