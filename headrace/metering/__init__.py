"""Usage events, pricing and the durable ledger."""
