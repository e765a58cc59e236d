"""The city's side: subscribing to gateways, decoding and de-duplicating what they publish,
and pushing signed config to a fleet. Never imported by the agent."""
