"""Loads the Touchstone pytest plugin (backend selection, profiles, reports)."""

pytest_plugins = ["properties.plugin"]
