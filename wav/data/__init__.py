"""Transition storage, collectors (scripted task policies, balanced random play) and loaders."""
