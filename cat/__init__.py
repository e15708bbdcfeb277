"""slc.cat."""
