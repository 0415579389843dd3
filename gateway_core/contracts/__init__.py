"""The wire contracts: what crosses between the gateway, the providers, the admin API and the console.

A leaf: it imports no other part of gateway_core, so `gateway/` and `providers/` can both depend on it.
"""
