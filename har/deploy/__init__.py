"""Deployment: push to a device over ssh, systemd service, doctor, MCU export."""
