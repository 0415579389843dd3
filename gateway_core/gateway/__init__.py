"""The request pipeline: keys, limits, routing, balancing, forwarding and accounting."""
