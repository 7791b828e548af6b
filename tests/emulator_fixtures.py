"""Emulator fixtures (filled by the emulator work)."""
