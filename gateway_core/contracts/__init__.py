"""The wire contracts: what crosses between the gateway, the providers, the admin API and the console.

A leaf: it imports no other part of gateway_core, so `gateway/` and `providers/` can both depend on it.

- errors.py: `GatewayError`, the OpenAI-shaped error every layer raises;
- request.py: reading and parsing a public API request (`ParsedRequest`);
- sse.py: server-sent event framing;
- adapter.py: the provider `Adapter` and `StreamRelay` protocols, and `Usage`;
- views.py, fleet_views.py: what the admin API answers (TypedDicts), also the event payloads;
- events.py: the event kinds (`EventKind`), each with its payload, and the typed `Publish`;
- chat.py: the OpenAI chat completion fields the client reads.
"""
