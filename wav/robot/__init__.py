"""Data for the robot setting (REFERENCE §6): scripted experts, a state-based diffusion policy whose
checkpoints grade from poor to near-expert, noisy rollouts into a trajectory pool, and its partitions.

Everything here runs on the envs of :mod:`wav.envs.manipulation` and writes robomimic-style HDF5
through :mod:`wav.data.robot_io`.
"""
