"""The roof: every command line (`ewc run`, `ewc up`, `ewc submit`, `ewc admin`, ...).

The only floor that may import everything below it (docs/architecture.md); nothing imports it.
"""
