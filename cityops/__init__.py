"""The city-operations domain: hierarchy, indicators, storage, roll-ups and viewer scope.

Nothing in this package imports Dash: the screen, the connectors and the CLI are all clients of it.
"""
