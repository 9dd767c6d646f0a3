"""Devices the runtime drives directly: power, (later) disks and USB."""
